// Bad arguments throw TypeError or RangeError before any native call: the
// probe runs without --allow-ffi, where a native call would throw
// BlksnapLibraryError instead.
import assert from "node:assert/strict";

const probe = new URL("./_validation_probe.ts", import.meta.url).pathname;

const expected: Record<string, string> = {
  "Tracker.open(42)": "TypeError",
  "Tracker.open('')": "TypeError",
  "Tracker.open(NUL)": "TypeError",
  "Snapshot.create(null)": "TypeError",
  "Snapshot.create(no diffStorage)": "TypeError",
  "Snapshot.create(limit 0)": "RangeError",
  "Snapshot.create(limit -1n)": "RangeError",
  "Snapshot.create(limit 2^64)": "RangeError",
  "Snapshot.create(limit NaN)": "RangeError",
  "Snapshot.create(devices: [1])": "TypeError",
  "Snapshot.open('x')": "TypeError",
  "Snapshot.open(1)": "TypeError",
  "CbtMap(bad since)": "RangeError",
  "Session.start(devices [])": "TypeError",
  "Session.start(duplicates)": "TypeError",
  "Session.start(pollMs 0)": "RangeError",
  // The control case: a valid call does reach the loader.
  "Tracker.open(valid path) needs FFI": "BlksnapLibraryError",
};

Deno.test("bad arguments throw TypeError/RangeError before any native call", async (t) => {
  const child = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--deny-ffi", "--allow-env", "--allow-read", probe],
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder().decode(child.stdout);
  assert.equal(child.code, 0, text + new TextDecoder().decode(child.stderr));
  const got = new Map<string, string>();
  for (const line of text.trim().split("\n")) {
    const { case: name, error } = JSON.parse(line);
    got.set(name, error);
  }
  for (const [name, error] of Object.entries(expected)) {
    await t.step(`${name} throws ${error}`, () => {
      assert.equal(got.get(name), error);
    });
  }
});

// Runs tests/unit/_fake_binding.ts in a child `deno test` with the garbage
// collector exposed and BLKSNAP_LIB set to libblksnap linked with the fake
// system call layer (built by `make -C tests/native fake-lib`), and reports
// each of its tests as a step.
import assert from "node:assert/strict";

const root = new URL("../../", import.meta.url).pathname;
const decoder = new TextDecoder();

Deno.test("the public API against libblksnap with a fake kernel", async (t) => {
  const make = await new Deno.Command("make", {
    args: ["-s", "-C", `${root}tests/native`, "fake-lib"],
  }).output();
  assert.equal(make.code, 0, decoder.decode(make.stderr));
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "test",
      "--allow-ffi",
      "--allow-env",
      "--allow-read",
      "--v8-flags=--expose-gc",
      "--reporter=tap",
      `${root}tests/unit/_fake_binding.ts`,
    ],
    env: { BLKSNAP_LIB: `${root}tests/native/build/fake/libblksnap.so.1`, NO_COLOR: "1" },
  }).output();
  const out = decoder.decode(child.stdout);
  const results = [...out.matchAll(/^(ok|not ok) \d+ - (.+)$/gm)];
  assert.ok(results.length >= 16, `too few results:\n${out}\n${decoder.decode(child.stderr)}`);
  for (const [, status, name] of results) {
    await t.step(name, () => {
      assert.equal(status, "ok", out);
    });
  }
  assert.equal(child.code, 0, out + decoder.decode(child.stderr));
});

import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";

/** The examples that take arguments; each prints its usage and exits 2 without them. */
const EXAMPLES = [
  "nightly_backup.ts",
  "full_backup_restore.ts",
  "watch_overflow.ts",
  "mark_file_dirty.ts",
  "changed_since.ts",
];

for (const name of EXAMPLES) {
  Deno.test(`examples/${name} without arguments prints its usage and exits 2, loading nothing`, async () => {
    const file = fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
    // No permissions at all: the script must not touch the library, a device or a file.
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-prompt", file],
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 2, stderr);
    assert.match(stderr, new RegExp(`^usage: ${name.replace(".", "\\.")} `));
  });
}

Deno.test("every example is listed in docs/operations.md", async () => {
  const doc = await Deno.readTextFile(
    fileURLToPath(new URL("../../docs/operations.md", import.meta.url)),
  );
  for (const name of [...EXAMPLES, "demo.ts"]) assert.ok(doc.includes(`examples/${name}`), name);
});

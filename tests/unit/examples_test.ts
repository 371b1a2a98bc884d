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

/** Run an example with no permissions at all. */
async function example(
  name: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = fileURLToPath(new URL(`../../examples/${name}`, import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", file, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

for (const name of [...EXAMPLES, "demo.ts"]) {
  Deno.test(`examples/${name} answers --help (exit 0) and an unknown option with its usage (exit 2)`, async () => {
    const help = await example(name, "--help");
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, new RegExp(`^usage: ${name.replace(".", "\\.")}`));
    const bad = await example(name, "--bogus");
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /^usage: /);
    assert.doesNotMatch(bad.stderr, /Uncaught/);
  });
}

Deno.test("examples take sizes like 4G and refuse what is not a size", async () => {
  const args = ["--repo", "/nonexistent/repo", "--diff-storage", "/var/tmp"];
  for (
    const [name, extra] of [
      ["nightly_backup.ts", ["/dev/vdb"]],
      ["full_backup_restore.ts", ["/dev/vdb", "/var/tmp/x.img"]],
      ["changed_since.ts", ["/dev/vdb", "latest"]],
      ["watch_overflow.ts", ["/dev/vdb"]],
    ] as const
  ) {
    const a = name === "watch_overflow.ts" ? args.slice(2) : args;
    const good = await example(name, ...a, "--limit", "4G", ...extra);
    // Without permissions it stops at the first file it touches, after the arguments.
    assert.notEqual(good.code, 2, `${name}: ${good.stderr}`);
    assert.doesNotMatch(good.stderr, /not a size|BigInt/);
    const bad = await example(name, ...a, "--limit", "4X", ...extra);
    assert.equal(bad.code, 2, bad.stderr);
    assert.match(bad.stderr, /--limit: "4X" is not a size/);
  }
});

Deno.test("every example is listed in docs/operations.md", async () => {
  const doc = await Deno.readTextFile(
    fileURLToPath(new URL("../../docs/operations.md", import.meta.url)),
  );
  for (const name of [...EXAMPLES, "demo.ts"]) assert.ok(doc.includes(`examples/${name}`), name);
});

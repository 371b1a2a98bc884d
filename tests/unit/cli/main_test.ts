import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { CLI_VERSION } from "../../../cli/main.ts";
import { cli } from "./_helpers.ts";

Deno.test("blksnap --version prints the CLI version and exits 0", async () => {
  const r = await cli("--version");
  assert.deepEqual(r.code, 0);
  assert.deepEqual(r.stdout.trim(), CLI_VERSION);
});

Deno.test("an unknown command or option is a usage error (exit 2)", async () => {
  for (
    const argv of [
      ["frobnicate"],
      ["attach", "-d", "/dev/x", "--bogus"],
      ["--bogus"],
      ["snapshot", "explode"],
    ]
  ) {
    const r = await cli(...argv);
    assert.deepEqual(r.code, 2, argv.join(" "));
    assert.match(r.stderr, /error: unknown (command|option)/, argv.join(" "));
    assert.deepEqual(r.stdout, "");
  }
});

Deno.test("a missing required option is a usage error (exit 2) that names it", async () => {
  const r = await cli("cbtinfo");
  assert.deepEqual(r.code, 2);
  assert.match(r.stderr, /required option '-d, --device <path>' not specified/);
  const s = await cli("snapshot", "create", "-f", "/tmp");
  assert.deepEqual(s.code, 2);
  assert.match(s.stderr, /--limit/);
});

Deno.test("a bad option value is a usage error (exit 2) that names the option", async () => {
  const cases: [string[], RegExp][] = [
    [["snapshot", "create", "-f", "/tmp", "-l", "lots"], /--limit.*not a size/],
    [["markdirty", "-d", "/dev/x", "-r", "12"], /--ranges.*sector:count/],
    [
      ["snapshot", "wait-event", "-i", "0f641e87-925a-3cf9-71d4-3a139747b514", "-t", "-5"],
      /--timeout/,
    ],
    [["init", "-r", "/tmp/x", "-c", "100M"], /--chunk-size.*out of range/],
    [["prune", "-r", "/tmp/x", "--keep-last", "two"], /--keep-last/],
    [["readcbtmap", "-d", "/dev/x", "--since", "256"], /--since/],
    [["snapshot", "take", "-i", "not-a-uuid"], /-i, --id <uuid>.*not a snapshot id/],
  ];
  for (const [argv, re] of cases) {
    const r = await cli(...argv);
    assert.deepEqual(r.code, 2, argv.join(" "));
    assert.match(r.stderr, re, argv.join(" "));
  }
});

Deno.test("usage problems found by actions exit 2 without touching anything", async () => {
  const env = Deno.env.get("BLKSNAP_REPO");
  Deno.env.delete("BLKSNAP_REPO");
  try {
    const noRepo = await cli("list");
    assert.deepEqual(noRepo.code, 2);
    assert.match(noRepo.stderr, /no repository/);
    const both = await cli("backup", "-r", "/nonexistent", "--image", "a", "-d", "/dev/x");
    assert.deepEqual(both.code, 2);
    assert.match(both.stderr, /either -d\/--device .* or --image/);
    const noStorage = await cli("backup", "-r", "/nonexistent", "-d", "/dev/x");
    assert.deepEqual(noStorage.code, 2);
    assert.match(noStorage.stderr, /--diff-storage is required/);
    const dirty = await cli("markdirty", "-d", "/dev/x");
    assert.deepEqual(dirty.code, 2);
    assert.match(dirty.stderr, /--ranges/);
    const noKeep = await cli("prune", "-r", "/nonexistent");
    assert.deepEqual(noKeep.code, 2);
    assert.match(noKeep.stderr, /--keep-last/);
  } finally {
    if (env !== undefined) Deno.env.set("BLKSNAP_REPO", env);
  }
});

Deno.test("a runtime error exits 1; with --json it is also one JSON document", async () => {
  const r = await cli("--json", "list", "-r", "/nonexistent/repo");
  assert.deepEqual(r.code, 1);
  const doc = JSON.parse(r.stdout);
  assert.deepEqual(doc.code, "NOT_FOUND");
  assert.deepEqual(doc.exitCode, 1);
  assert.match(r.stderr, /^blksnap: error: NOT_FOUND: No repository/);
});

Deno.test("--lib sets BLKSNAP_LIB, and a missing library is a runtime error (exit 1)", async () => {
  const before = Deno.env.get("BLKSNAP_LIB");
  try {
    const r = await cli("--lib", "/nonexistent/libblksnap.so", "version");
    assert.deepEqual(Deno.env.get("BLKSNAP_LIB"), "/nonexistent/libblksnap.so");
    assert.deepEqual(r.code, 1);
    assert.match(r.stderr, /^blksnap: error: /);
  } finally {
    if (before === undefined) Deno.env.delete("BLKSNAP_LIB");
    else Deno.env.set("BLKSNAP_LIB", before);
  }
});

Deno.test("cli/main.ts runs --help with no permissions at all (nothing loaded at import)", async () => {
  const main = fileURLToPath(new URL("../../../cli/main.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", main, "snapshot", "--help"],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  assert.deepEqual(out.code, 0, new TextDecoder().decode(out.stderr));
  assert(stdout.startsWith("Usage: blksnap snapshot"), stdout);
});

Deno.test("cli/main.ts exits with run()'s code when run as a program", async () => {
  const main = fileURLToPath(new URL("../../../cli/main.ts", import.meta.url));
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", main, "attach"],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.deepEqual(out.code, 2);
});

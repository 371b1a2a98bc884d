import assert from "node:assert/strict";
import { buildCli } from "../../../cli/main.ts";
import { newContext } from "../../../cli/_output.ts";
import { cli } from "./_helpers.ts";

/** Every command path and the options its --help must show. */
const COMMANDS: Record<string, string[]> = {
  "version": [],
  "attach": ["-d, --device <path>"],
  "detach": ["-d, --device <path>"],
  "cbtinfo": ["-d, --device <path>"],
  "readcbtmap": ["-d, --device <path>", "-f, --file <path>", "-s, --since <n>"],
  "markdirty": ["-d, --device <path>", "-r, --ranges <sector:count...>", "-f, --file <path>"],
  "snapshot": ["create", "add", "take", "destroy", "collect", "info", "wait-event", "watch"],
  "snapshot create": ["-f, --file <path>", "-l, --limit <size>", "-d, --device <path...>"],
  "snapshot add": ["-i, --id <uuid>", "-d, --device <path>"],
  "snapshot take": ["-i, --id <uuid>"],
  "snapshot destroy": ["-i, --id <uuid>"],
  "snapshot collect": [],
  "snapshot info": ["-d, --device <path>", "--field <name>"],
  "snapshot wait-event": ["-i, --id <uuid>", "-t, --timeout <ms>"],
  "snapshot watch": ["-i, --id <uuid>", "--interval <ms>"],
  "init": [
    "-r, --repo <path>",
    "-c, --chunk-size <size>",
    "--compression-level <n>",
    "--no-encryption",
    "--object-lock-days <n>",
  ],
  "copy": ["--from <repo>", "--to <repo>", "--latest", "[ids...]"],
  "key list": ["-r, --repo <path>"],
  "key add": ["-r, --repo <path>", "--label <text>", "--new-password-file <file>"],
  "key remove": ["<id>", "-r, --repo <path>"],
  "key passwd": ["-r, --repo <path>", "--new-password-file <file>"],
  "backup": [
    "-r, --repo <path>",
    "-d, --device <path...>",
    "-s, --diff-storage <path>",
    "-l, --limit <size>",
    "--image <file>",
    "--name <name>",
    "--full",
    "--require-verified-parent",
  ],
  "restore": [
    "<id>",
    "<target>",
    "-r, --repo <path>",
    "-d, --device <key>",
    "--resize",
    "--verify-first",
    "--files <path...>",
    "--partition <n>",
  ],
  "serve": [
    "<id>",
    "-r, --repo <path>",
    "--socket <path>",
    "--port <n>",
    "--overlay <file>",
    "--cache <size>",
    "--read-ahead <chunks>",
  ],
  "mount": ["<id>", "<dir>", "-r, --repo <path>", "--partition <n>"],
  "umount": ["<dir>"],
  "verify": ["-r, --repo <path>", "--deep", "--no-mark"],
  "repair": ["-r, --repo <path>", "--source <path...>", "--dry-run"],
  "list": ["-r, --repo <path>", "-d, --device <key>"],
  "stats": ["-r, --repo <path>", "-d, --device <key>"],
  "diff": ["<a>", "<b>", "-r, --repo <path>", "--extents"],
  "prune": [
    "-r, --repo <path>",
    "--keep-last <n>",
    "--keep-hourly <n>",
    "--keep-daily <n>",
    "--keep-weekly <n>",
    "--keep-monthly <n>",
    "--keep-yearly <n>",
    "--keep-within <duration>",
    "-d, --device <key>",
    "--dry-run",
  ],
  "forget": ["<id...>", "-r, --repo <path>", "-d, --device <key>", "--dry-run"],
  "gc": ["-r, --repo <path>", "--dry-run", "--grace <minutes>"],
  "unlock": ["-r, --repo <path>", "--force", "--dry-run"],
  "completion": ["<shell>"],
};

Deno.test("blksnap --help lists every command and the exit codes", async () => {
  const r = await cli("--help");
  assert.deepEqual(r.code, 0);
  for (const name of Object.keys(COMMANDS).filter((c) => !c.includes(" "))) {
    assert.match(r.stdout, new RegExp(`^  ${name}\\b`, "m"), name);
  }
  for (
    const line of [
      "0    success",
      "2    usage error",
      "3    verify found",
      "4    the repository",
      "130  stopped by SIGINT",
    ]
  ) {
    assert(r.stdout.includes(line), line);
  }
  assert(r.stdout.includes("-j, --json"));
  assert(r.stdout.includes("--lib <path>"));
  assert(r.stdout.includes("-q, --quiet"));
  assert(r.stdout.includes("-v, --verbose"));
});

Deno.test("blksnap's command tree is the documented one", () => {
  const io = { stdout: () => {}, stderr: () => {}, isTerminal: false };
  const program = buildCli(newContext(io));
  const tree = program.commands.map((c) =>
    c.commands.length === 0 ? c.name() : `${c.name()}(${c.commands.map((s) => s.name()).join(" ")})`
  );
  assert.deepEqual(tree, [
    "version",
    "attach",
    "detach",
    "cbtinfo",
    "readcbtmap",
    "markdirty",
    "snapshot(create add take destroy collect info wait-event watch)",
    "init",
    "backup",
    "restore",
    "serve",
    "mount",
    "umount",
    "verify",
    "repair",
    "list",
    "stats",
    "diff",
    "prune",
    "forget",
    "gc",
    "unlock",
    "copy",
    "key(list add remove passwd)",
    "completion",
  ]);
});

for (const [path, expected] of Object.entries(COMMANDS)) {
  Deno.test(`blksnap ${path} --help shows its usage, options and the global options`, async () => {
    const r = await cli(...path.split(" "), "--help");
    assert.deepEqual(r.code, 0, r.stderr);
    assert(r.stdout.startsWith(`Usage: blksnap ${path}`), r.stdout);
    for (const e of expected) assert(r.stdout.includes(e), `${path}: ${e}\n${r.stdout}`);
    if (!["snapshot"].includes(path)) {
      assert(r.stdout.includes("Global Options:"), r.stdout);
      assert(r.stdout.includes("-j, --json"), r.stdout);
    }
  });
}

Deno.test("blksnap help <command> prints that command's help", async () => {
  const r = await cli("help", "backup");
  assert.deepEqual(r.code, 0);
  assert(r.stdout.startsWith("Usage: blksnap backup"));
});

Deno.test("--help marks required options (required) and no others", async () => {
  const attach = await cli("attach", "--help");
  assert.match(attach.stdout, /-d, --device <path>\s+block device, e\.g\. \/dev\/vdb \(required\)/);
  const create = await cli("snapshot", "create", "--help");
  assert.match(create.stdout, /-l, --limit <size>.*\(required\)/);
  assert.doesNotMatch(create.stdout, /-d, --device <path\.\.\.>.*\(required\)/);
  // Built twice in one process, the mark is added once.
  const again = await cli("attach", "--help");
  assert.equal(again.stdout.match(/\(required\)/g)?.length, 1);
});

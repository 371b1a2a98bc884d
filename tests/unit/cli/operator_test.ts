// The operator's commands and messages, in-process: restore latest and short
// ids, forget, unlock, stats, diff, repair, --quiet, --json usage errors, the
// module-missing and library-missing messages, completion scripts.
import assert from "node:assert/strict";
import { join } from "node:path";
import { buildCli } from "../../../cli/main.ts";
import { describeError } from "../../../cli/_exit.ts";
import { newContext } from "../../../cli/_output.ts";
import { bashCompletion } from "../../../cli/commands/completion.ts";
import { BlksnapError } from "../../../lib/errors.ts";
import { cli, cliJson } from "./_helpers.ts";

async function withRepo(
  fn: (f: { dir: string; repo: string; image: string; ids: string[] }) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-cli-op-" });
  try {
    const repo = join(dir, "repo");
    const image = join(dir, "disk.img");
    const data = new Uint8Array(256 * 1024);
    crypto.getRandomValues(data.subarray(0, 65536));
    await Deno.writeFile(image, data);
    assert.equal((await cli("init", "-r", repo, "-c", "64K", "--no-encryption")).code, 0);
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) {
      crypto.getRandomValues(data.subarray(65536 * i, 65536 * i + 1000));
      await Deno.writeFile(image, data);
      const b = await cliJson("backup", "-r", repo, "--image", image);
      assert.equal(b.code, 0, b.stderr);
      ids.push((b.json.backups as { manifest: { id: string } }[])[0].manifest.id);
    }
    await fn({ dir, repo, image, ids });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("restore latest and a short id; '-' is refused; the image is named by its absolute path", async () => {
  await withRepo(async ({ dir, repo, image, ids }) => {
    const out = join(dir, "out.img");
    const r = await cliJson("restore", "-r", repo, "latest", out);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.json.backupId, ids[2]);
    assert.deepEqual(await Deno.readFile(out), await Deno.readFile(image));
    const short = await cliJson("restore", "-r", repo, ids[0].slice(-8), join(dir, "o0.img"));
    assert.equal(short.json.backupId, ids[0]);
    const dash = await cli("restore", "-r", repo, "latest", "-");
    assert.equal(dash.code, 2);
    assert.match(dash.stderr, /not stdout/);
    const list = await cliJson("list", "-r", repo);
    const names = (list.json.backups as { device: { name: string } }[]).map((b) => b.device.name);
    assert.deepEqual(new Set(names), new Set([image]));
  });
});

Deno.test("forget, stats, diff and unlock through the CLI", async () => {
  await withRepo(async ({ repo, ids }) => {
    const d = await cliJson("diff", "-r", repo, ids[0].slice(-8), "latest");
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.json.chunksChanged, 2);
    assert.equal(d.json.bytesChanged, 2 * 65536);
    const s = await cliJson("stats", "-r", repo);
    assert.equal(s.json.backups, 3);
    assert.equal(s.json.logicalBytes, 3 * 256 * 1024);
    const human = await cli("stats", "-r", repo);
    assert.match(human.stdout, /^DEVICE +BACKUPS +LOGICAL +UNIQUE +STORED +DEDUP +COMPRESSION$/m);
    const f = await cli("forget", "-r", repo, "latest", ids[0]);
    assert.equal(f.code, 0, f.stderr);
    assert.match(f.stdout, /removed 2 backup\(s\)/);
    assert.equal(((await cliJson("list", "-r", repo)).json.backups as unknown[]).length, 1);
    const bad = await cli("forget", "-r", repo, "nonsense!");
    assert.equal(bad.code, 2);
    assert.equal((await cli("unlock", "-r", repo)).stdout.trim(), `${repo} is not locked`);
    await Deno.writeTextFile(
      join(repo, "lock"),
      JSON.stringify({
        pid: 1,
        host: "another-host",
        time: new Date().toISOString(),
        operation: "backup",
        token: "t",
      }),
    );
    const held = await cli("unlock", "-r", repo);
    assert.equal(held.code, 4, "a fresh lock of another host needs --force");
    assert.match(held.stderr, /give --force/);
    const forced = await cli("unlock", "-r", repo, "--force");
    assert.equal(forced.code, 0);
    assert.match(forced.stdout, /removed the lock \(backup by pid 1 on another-host/);
  });
});

Deno.test("--quiet prints nothing on success; verify damage is one line on stderr; exit 3", async () => {
  await withRepo(async ({ repo, ids }) => {
    const ok = await cli("--quiet", "verify", "-r", repo);
    assert.deepEqual([ok.code, ok.stdout, ok.stderr], [0, "", ""]);
    const quietBackup = await cli("-q", "gc", "-r", repo);
    assert.deepEqual([quietBackup.stdout, quietBackup.stderr], ["", ""]);
    // damage one chunk of the last backup
    const manifest = (await cliJson("list", "-r", repo)).json.backups as { id: string }[];
    assert.equal(manifest.at(-1)!.id, ids[2]);
    const chunksDir = join(repo, "chunks");
    let victim = "";
    for await (const fan of Deno.readDir(chunksDir)) {
      for await (const c of Deno.readDir(join(chunksDir, fan.name))) {
        victim ||= join(chunksDir, fan.name, c.name);
      }
    }
    await Deno.writeFile(victim, new Uint8Array([1, 2, 3]));
    const bad = await cli("-q", "verify", "-r", repo);
    assert.equal(bad.code, 3);
    assert.equal(bad.stdout, "");
    assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
    assert.match(bad.stderr, /found damage: 1 bad chunk/);
  });
});

Deno.test("--json usage errors are JSON on stdout; every error line starts with blksnap: error:", async () => {
  for (
    const argv of [
      ["--json", "bogus"],
      ["--json", "init", "-c", "3"],
      ["--json", "prune", "--keep-yearly", "x"],
      ["list", "--json", "--bogus"],
    ]
  ) {
    const r = await cli(...argv);
    assert.equal(r.code, 2, argv.join(" "));
    const doc = JSON.parse(r.stdout);
    assert.equal(doc.exitCode, 2);
    assert.match(doc.code, /^commander\./);
    assert.match(r.stderr, /^blksnap: error: /);
  }
  const usage = await cli("--json", "prune", "-r", "/nonexistent");
  assert.equal(usage.code, 2);
  assert.deepEqual(JSON.parse(usage.stdout).exitCode, 2);
});

Deno.test("a missing module names /dev/blksnap-control and how to load it", {
  ignore: (() => {
    try {
      Deno.statSync("/dev/blksnap-control");
      return true; // the module is loaded here: the hint does not apply
    } catch {
      return false;
    }
  })(),
}, () => {
  const line = describeError(new BlksnapError(2, "Tracker.attach", { detail: "/dev/loop0" }));
  assert.match(line, /^Tracker\.attach failed: .*\/dev\/loop0 \[errno 2\]; /);
  assert.match(line, /\/dev\/blksnap-control is missing: the blksnap module is not loaded/);
  assert.match(line, /modprobe blksnap/);
});

Deno.test("a library that cannot be loaded is one error line and each path tried once", async () => {
  // --lib sets BLKSNAP_LIB in this process: put it back for the tests that follow.
  const saved = Deno.env.get("BLKSNAP_LIB");
  const r = await cli("--lib", "/nonexistent/libblksnap.so.1", "version").finally(() => {
    if (saved === undefined) Deno.env.delete("BLKSNAP_LIB");
    else Deno.env.set("BLKSNAP_LIB", saved);
  });
  assert.equal(r.code, 1);
  const lines = r.stderr.trim().split("\n");
  assert.match(lines[0], /^blksnap: error: libblksnap not found: BLKSNAP_LIB \(or --lib\) names/);
  assert.deepEqual(lines.slice(1).map((l) => l.startsWith("  tried ")), [true]);
  assert.doesNotMatch(r.stderr, /Could not open library: Could not open library/);
});

Deno.test("odd input: --image of a directory or of nothing, init of a repository, a bad keep-within, an unreadable lock", async () => {
  await withRepo(async ({ dir, repo }) => {
    const d = await cli("backup", "-r", repo, "--image", dir);
    assert.equal(d.code, 2);
    assert.match(d.stderr, /is a directory/);
    const gone = await cli("--json", "backup", "-r", repo, "--image", `${dir}/nonexistent.img`);
    assert.equal(gone.code, 2);
    assert.equal(
      gone.stderr.trim(),
      `blksnap: error: --image ${dir}/nonexistent.img: no such file or block device`,
    );
    assert.equal(JSON.parse(gone.stdout).exitCode, 2);
    // An unreadable lock is named by its path, and the way out is said.
    await Deno.writeTextFile(`${repo}/lock`, "garbage");
    const locked = await cli("gc", "-r", repo);
    assert.equal(locked.code, 4);
    assert.match(
      locked.stderr,
      new RegExp(`an unreadable lock file ${repo}/lock; .*unlock --force`),
    );
    await Deno.remove(`${repo}/lock`);
    const again = await cli("init", "-r", repo, "--no-encryption");
    assert.equal(again.code, 2);
    assert.match(again.stderr, /already a blksnap repository/);
    const within = await cli("prune", "-r", repo, "--keep-within", "soon");
    assert.equal(within.code, 2);
    assert.match(within.stderr, /not a duration/);
  });
});

Deno.test("the bash completion script completes commands and their options", async () => {
  const io = { stdout: () => {}, stderr: () => {}, isTerminal: false };
  const script = bashCompletion(buildCli(newContext(io)));
  const complete = async (line: string): Promise<string[]> => {
    const words = line.split(" ");
    const prog = `${script}
COMP_WORDS=(${words.map((w) => `'${w}'`).join(" ")}); COMP_CWORD=${words.length - 1}
_blksnap; printf '%s\\n' "\${COMPREPLY[@]}"`;
    const out = await new Deno.Command("bash", { args: ["-c", prog], stdout: "piped" }).output();
    return new TextDecoder().decode(out.stdout).split("\n").filter(Boolean).sort();
  };
  assert.deepEqual(await complete("blksnap ba"), ["backup"]);
  assert.deepEqual(await complete("blksnap prune --keep-w"), ["--keep-weekly", "--keep-within"]);
  assert.deepEqual(await complete("blksnap snapshot cr"), ["create"]);
  assert.deepEqual(await complete("blksnap -j snapshot create --li"), ["--limit"]);
  for (const shell of ["zsh", "fish"]) {
    const r = await cli("completion", shell);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /blksnap/);
  }
  assert.equal((await cli("completion", "tcsh")).code, 2);
});

Deno.test("what an operator sees of damage, a running writer and an empty image", async () => {
  await withRepo(async ({ dir, repo, ids }) => {
    // A cut index: list marks the backup damaged (without a verify).
    const index = join(repo, "backups", `${ids[0]}.index`);
    const saved = await Deno.readFile(index);
    await Deno.truncate(index, 100);
    const listed = await cli("list", "-r", repo);
    assert.match(listed.stdout, new RegExp(`^${ids[0]} .* damaged `, "m"));
    await Deno.writeFile(index, saved);
    // A corrupt chunk: restore's BAD_CHUNK line names the chunk file.
    const chunks: string[] = [];
    for await (const fan of Deno.readDir(join(repo, "chunks"))) {
      for await (const c of Deno.readDir(join(repo, "chunks", fan.name))) {
        chunks.push(join(repo, "chunks", fan.name, c.name));
      }
    }
    const bytes = await Deno.readFile(chunks[0]);
    bytes[bytes.length - 1] ^= 1;
    await Deno.writeFile(chunks[0], bytes);
    const r = await cli("restore", "-r", repo, "latest", join(dir, "x.img"));
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^blksnap: error: BAD_CHUNK: .*\//);
    assert.ok(r.stderr.includes(chunks[0]), r.stderr);
    // A writer holds the lock: a dry-run gc and a fast verify still run and name it.
    await Deno.writeTextFile(
      join(repo, "lock"),
      JSON.stringify({
        pid: Deno.pid,
        host: "writer-host",
        time: new Date().toISOString(),
        operation: "backup",
        token: "w",
      }),
    );
    const dry = await cli("gc", "-r", repo, "--dry-run");
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /backup by pid \d+ on writer-host holds the lock/);
    assert.match(dry.stdout, /^chunks_to_remove=/m);
    const fast = await cliJson("verify", "-r", repo);
    assert.equal((fast.json.writer as { host: string }).host, "writer-host");
    await Deno.remove(join(repo, "lock"));
    // An empty image is backed up with a warning.
    const empty = join(dir, "empty.img");
    await Deno.writeFile(empty, new Uint8Array(0));
    const e = await cli("backup", "-r", repo, "--image", empty);
    assert.equal(e.code, 0, e.stderr);
    assert.match(e.stderr, /^warning: .*empty\.img is empty \(0 bytes\)/m);
  });
});

Deno.test("serve, mount and restore --files take latest and short ids (resolved before anything starts)", async () => {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-cli-ids-" });
  try {
    const repo = join(dir, "repo");
    assert.equal((await cli("init", "-r", repo, "--no-encryption")).code, 0);
    const socket = join(dir, "nbd.sock");
    for (
      const args of [
        ["serve", "-r", repo, "latest", "--socket", socket],
        ["mount", "-r", repo, "latest", dir],
        ["restore", "-r", repo, "latest", dir, "--files", "/etc/fstab"],
      ]
    ) {
      const r = await cli(...args);
      assert.equal(r.code, 1, `${args[0]}: ${r.stderr}`);
      assert.match(r.stderr, /^blksnap: error: NOT_FOUND: No backup in /, args[0]);
      const short = await cli(...args.map((a) => a === "latest" ? "0a1b2c3d" : a));
      assert.match(short.stderr, /NOT_FOUND: No backup matches 0a1b2c3d/, args[0]);
    }
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

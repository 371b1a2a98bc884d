// SIGINT and SIGTERM stop backup, restore, verify, prune and gc as an
// operator runs them (a `deno run -A cli/main.ts` process): within seconds,
// exit 130/143, one error line, the lock released, the failed run recorded,
// a partial new file removed, the repository valid; on a terminal the cursor
// is shown again. The process is paused (SIGSTOP) once its work has visibly
// started, signalled, and resumed, so the signal always lands mid-run.
import assert from "node:assert/strict";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { backup, forget, Repository, verify } from "../../../lib/backup/mod.ts";
import { pseudoRandom } from "../backup/_helpers.ts";
import { signalMidRun as interrupt, type Stopped } from "../../_signals.ts";

const MAIN = fileURLToPath(new URL("../../../cli/main.ts", import.meta.url));
const MiB = 1 << 20;

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-prompt", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
}

async function exists(path: string): Promise<boolean> {
  return (await Deno.stat(path).catch(() => null)) !== null;
}

async function fixture(dir: string): Promise<{ repo: Repository; image: string; id: string }> {
  const image = join(dir, "disk.img");
  await Deno.writeFile(image, pseudoRandom(64 * MiB, 7));
  const repo = await Repository.init(join(dir, "repo"), { chunkSize: MiB });
  const { FileSource } = await import("../../../lib/backup/mod.ts");
  using src = await FileSource.open(image);
  const id = (await backup(src, repo)).manifest.id;
  return { repo, image, id };
}

function checkStopped(
  r: Stopped,
  signal: "SIGINT" | "SIGTERM",
  what: RegExp,
): void {
  assert.equal(r.code, signal === "SIGINT" ? 130 : 143, r.stderr);
  const lines = r.stderr.trim().split("\n");
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0], new RegExp(`^blksnap: error: interrupted by ${signal}: `));
  assert.match(lines[0], what);
  console.log(`  stopped ${r.stopMs.toFixed(0)} ms after ${signal}`);
  assert.ok(r.stopMs < 15_000, `took ${r.stopMs} ms`);
}

Deno.test("SIGINT/SIGTERM stop backup, restore, verify, prune and gc cleanly", async () => {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-signals-" });
  try {
    const { repo, image, id } = await fixture(dir);
    const lock = join(repo.path, "lock");

    // backup --image into a fresh repository: a failed run is recorded.
    const slow = await Repository.init(join(dir, "slow"), { chunkSize: MiB });
    const b = spawn(["backup", "-r", slow.path, "--image", image]);
    const rb = await interrupt(
      b,
      async () =>
        (await Deno.readDir(slow.chunksDir)[Symbol.asyncIterator]().next()).done === false,
      "SIGTERM",
    );
    checkStopped(rb, "SIGTERM", /no backup was written; the failed run is recorded/);
    assert.equal((await slow.listBackupIds()).length, 0);
    assert.equal(await exists(slow.lockPath), false);
    const runs = [...Deno.readDirSync(slow.runsDir)].map((e) => e.name);
    assert.equal(runs.length, 1);
    assert.match(await Deno.readTextFile(join(slow.runsDir, runs[0])), /interrupted by SIGTERM/);
    assert.equal((await verify(slow)).ok, true);

    // restore to a new file: the partial file is removed.
    const target = join(dir, "restored.img");
    const r = spawn(["restore", "-r", repo.path, id, target, "--verify-first"]);
    const rr = await interrupt(r, () => exists(target), "SIGINT");
    checkStopped(rr, "SIGINT", /was removed if this restore created it/);
    assert.equal(await exists(target), false);

    // verify --deep (marking, so it holds the lock): nothing is marked.
    const v = spawn(["verify", "-r", repo.path, "--deep"]);
    const rv = await interrupt(v, () => exists(lock), "SIGTERM");
    checkStopped(rv, "SIGTERM", /nothing was recorded/);
    assert.equal((await repo.readManifest(id)).verification.state, "none");
    assert.equal(await exists(lock), false);

    // prune: 1000 backups of one device (copies of one manifest and index, written
    // directly: the test needs many, not durable ones).
    const manifestText = await Deno.readTextFile(repo.manifestPath(id));
    for (let i = 0; i < 1000; i++) {
      const copy = `${id.slice(0, 19)}-${i.toString(16).padStart(8, "0")}`;
      await Deno.copyFile(repo.indexPath(id), repo.indexPath(copy));
      await Deno.writeTextFile(repo.manifestPath(copy), manifestText.replaceAll(id, copy));
    }
    const p = spawn(["prune", "-r", repo.path, "--keep-last", "1"]);
    const rp = await interrupt(p, () => exists(lock), "SIGINT");
    checkStopped(rp, "SIGINT", /the others kept/);
    const left = (await repo.listBackupIds()).length;
    assert.ok(left > 1 && left <= 1001, `${left} backups left`);
    assert.equal(await exists(lock), false);

    // gc: every chunk unreferenced, and 3000 more (empty files under chunk names), so its
    // removals take many batches and the signal lands between two of them.
    await forget(repo, await repo.listBackupIds());
    for (let i = 0; i < 3000; i++) {
      const hex = i.toString(16).padStart(4, "0").repeat(16);
      await Deno.mkdir(join(repo.chunksDir, hex.slice(0, 2)), { recursive: true });
      await Deno.writeFile(join(repo.chunksDir, hex.slice(0, 2), hex), new Uint8Array());
    }
    const g = spawn(["gc", "-r", repo.path]);
    const rg = await interrupt(g, () => exists(lock), "SIGTERM");
    checkStopped(rg, "SIGTERM", /the next gc finishes/);
    assert.equal(await exists(lock), false);
    assert.equal((await verify(repo)).ok, true);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "SIGINT on a terminal: the progress bar is removed and the cursor shown again",
  ignore: Deno.build.os !== "linux" ||
    !(await Deno.stat("/usr/bin/script").then(() => true, () => false)),
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "blksnap-signals-tty-" });
    try {
      const { repo, id } = await fixture(dir);
      const target = join(dir, "out.img");
      // script(1) gives the command a terminal; it runs deno in its own session.
      const cmd =
        `exec '${Deno.execPath()}' run -A --no-prompt '${MAIN}' restore -r '${repo.path}' ` +
        `${id} '${target}' --verify-first`;
      const child = new Deno.Command("script", {
        args: ["-qfec", cmd, "/dev/null"],
        stdout: "piped",
        stderr: "piped",
        env: { NO_COLOR: "1", TERM: "xterm" },
      }).spawn();
      const out: Uint8Array[] = [];
      const reading = (async () => {
        for await (const c of child.stdout) out.push(c);
      })();
      const seen = () => new TextDecoder().decode(new Uint8Array(out.flatMap((c) => [...c])));
      const deadline = Date.now() + 60_000;
      while (!seen().includes("restore [") && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 20));
      }
      assert.match(seen(), /restore \[/, "a progress bar is drawn on the terminal");
      // The deno process is script's child.
      const children = (await Deno.readTextFile(`/proc/${child.pid}/task/${child.pid}/children`))
        .trim().split(/\s+/).map(Number);
      Deno.kill(children[0], "SIGINT");
      const status = await child.status;
      await reading;
      await child.stderr.cancel();
      const text = seen();
      assert.equal(status.code, 130, text);
      assert.match(text, /interrupted by SIGINT/);
      const hidden = text.lastIndexOf("\x1b[?25l");
      assert.ok(hidden >= 0, "the bar hid the cursor");
      assert.ok(text.indexOf("\x1b[?25h", hidden) > hidden, "and it is shown again");
      assert.equal(await exists(target), false);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

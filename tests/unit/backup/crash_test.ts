import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  DenoFs,
  gc,
  list,
  RepoError,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { FaultFs, InjectedFault } from "../../../lib/backup/_fault_fs.ts";
import {
  copyDir,
  deadPid,
  FakeCbt,
  listFiles,
  MemSource,
  pseudoRandom,
  sha256Hex,
  tempDir,
} from "./_helpers.ts";

const KiB = 1024;

async function restoredHash(repo: Repository, id: string, dir: string): Promise<string> {
  const out = join(dir, `r-${id}.img`);
  await restore(repo, id, out);
  const h = sha256Hex(await Deno.readFile(out));
  await Deno.remove(out);
  return h;
}

/** After a crash the process is gone: make its lock look like a dead process's. */
async function simulateProcessDeath(repoPath: string, pid: number): Promise<void> {
  const lock = join(repoPath, "lock");
  try {
    const info = JSON.parse(await Deno.readTextFile(lock));
    await Deno.writeTextFile(lock, JSON.stringify({ ...info, pid }));
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
}

for (const kind of ["incremental", "full of a new device"] as const) {
  Deno.test(`backup() crashing at every write step leaves the repository valid (${kind})`, async () => {
    await using dir = await tempDir();
    const base = join(dir.path, "base");
    const chunkSize = 16 * KiB;
    const size = 128 * KiB + 333;
    const img1 = pseudoRandom(size, 1);
    const cbt = new FakeCbt(BigInt(size), chunkSize);
    cbt.take();
    const repo0 = await Repository.init(base, { chunkSize });
    const first = await backup(new MemSource(img1, { id: "d1", cbt }), repo0);
    const hash1 = sha256Hex(img1);

    const img2 = img1.slice();
    for (const off of [0, 40 * KiB, 100 * KiB, size - 10]) { // 4 chunks change
      img2.set(pseudoRandom(10, off + 3), off);
      cbt.markWrite(off, 10);
    }
    cbt.take();
    const hash2 = sha256Hex(img2);
    const newSize = 6 * chunkSize + 99; // 7 chunks: every step of a full backup
    const makeSource = () =>
      kind === "incremental"
        ? new MemSource(img2, { id: "d1", cbt })
        : new MemSource(pseudoRandom(newSize, 77), { id: "d2" });
    const hashNew = kind === "incremental" ? hash2 : sha256Hex(pseudoRandom(newSize, 77));

    // Count the steps of a clean run.
    const countDir = join(dir.path, "count");
    await copyDir(base, countDir);
    const counter = new FaultFs(new DenoFs());
    await backup(makeSource(), await Repository.open(countDir, { fs: counter }), {
      concurrency: 1,
    });
    const n = counter.steps;
    assert.ok(n > 10, `steps ${n}`);
    console.log(`${kind}: ${n} steps: ${counter.log.map((l) => l.split(" ")[0]).join(", ")}`);

    const dead = await deadPid();
    let completed = 0, absent = 0;
    for (let k = 1; k <= n; k++) {
      const work = join(dir.path, `k${k}`);
      await copyDir(base, work);
      const fs = new FaultFs(new DenoFs(), { failAt: k, mode: "crash" });
      const repo = await Repository.open(work, { fs });
      let crashed = false;
      try {
        await backup(makeSource(), repo, { concurrency: 1 });
      } catch (e) {
        crashed = true;
        assert.ok(
          e instanceof InjectedFault ||
            (e instanceof RepoError && e.cause instanceof InjectedFault),
          `k=${k}: ${e}`,
        );
      }
      // The last step is the lock release: a crash there still leaves a complete backup.
      assert.ok(crashed || k === n, `k=${k}`);
      await simulateProcessDeath(work, dead);

      const after = await Repository.open(work);
      const report = await verify(after, { deep: true, mark: false });
      assert.equal(report.ok, true, `k=${k}: ${JSON.stringify(report.badChunks)}`);
      const { backups, problems } = await list(after);
      assert.equal(problems.length, 0, `k=${k}`);
      assert.ok(backups.length === 1 || backups.length === 2, `k=${k}`);
      assert.equal(backups[0].id, first.manifest.id);
      assert.equal(await restoredHash(after, first.manifest.id, dir.path), hash1, `k=${k}`);
      if (backups.length === 2) {
        completed++;
        assert.equal(await restoredHash(after, backups[1].id, dir.path), hashNew, `k=${k}`);
      } else absent++;

      // A rerun breaks the dead process's lock and succeeds; gc removes the leftovers.
      const rerun = await backup(makeSource(), after);
      assert.equal(await restoredHash(after, rerun.manifest.id, dir.path), hashNew);
      await gc(after);
      const clean = await verify(after);
      assert.equal(clean.ok, true);
      assert.deepEqual(clean.tempFiles, []);
      assert.deepEqual(clean.orphanIndexes, []);
      assert.deepEqual(clean.unreferencedChunks, []);
      assert.ok(!(await listFiles(work)).some((f) => f.includes(".tmp-")), `k=${k}`);
      await Deno.remove(work, { recursive: true });
    }
    assert.ok(completed >= 1 && absent >= n - 3, `completed ${completed}, absent ${absent}`);
  });
}

Deno.test("backup() with ENOSPC fails once, releases the lock and a rerun succeeds", async () => {
  await using dir = await tempDir();
  const chunkSize = 8 * KiB;
  const size = 200 * KiB + 1;
  const base = join(dir.path, "base");
  const repo0 = await Repository.init(base, { chunkSize });
  const img1 = pseudoRandom(size, 5);
  const first = await backup(new MemSource(img1, { id: "d" }), repo0);
  const img2 = pseudoRandom(size, 6);

  const counter = new FaultFs(new DenoFs());
  const countDir = join(dir.path, "count");
  await copyDir(base, countDir);
  await backup(new MemSource(img2, { id: "d" }), await Repository.open(countDir, { fs: counter }));

  // Every write or rename step: the first chunk, a middle chunk, the index, the manifest.
  const writes = counter.log.map((l, i) => [i + 1, l] as const).filter(([, l]) =>
    /^(writeFile|rename) /.test(l) && !/ .*\/lock$/.test(l)
  );
  const picks = [writes[0], writes[1], writes[Math.floor(writes.length / 2)], ...writes.slice(-4)];
  assert.match(picks.at(-1)![1], /\.json$/);
  for (const [k] of picks) {
    const work = join(dir.path, `k${k}`);
    await copyDir(base, work);
    const fs = new FaultFs(new DenoFs(), { failAt: k, mode: "enospc" });
    const repo = await Repository.open(work, { fs });
    const started = Date.now();
    await assert.rejects(backup(new MemSource(img2, { id: "d" }), repo), (e: unknown) => {
      assert.ok(e instanceof RepoError, String(e));
      assert.equal(e.errno, "ENOSPC", e.message);
      assert.match(e.message, /ENOSPC|No space left/);
      return true;
    }, `k=${k}`);
    assert.ok(Date.now() - started < 5000, "not retried forever");
    assert.equal(await Deno.stat(join(work, "lock")).catch(() => null), null, `lock k=${k}`);
    const after = await Repository.open(work);
    const { backups } = await list(after);
    assert.deepEqual(backups.map((b) => b.id), [first.manifest.id], `k=${k}`);
    assert.equal((await verify(after, { deep: true, mark: false })).ok, true);
    assert.deepEqual((await verify(after)).orphanIndexes, []);
    assert.equal(await restoredHash(after, first.manifest.id, dir.path), sha256Hex(img1));
    // Space freed: a rerun succeeds.
    const rerun = await backup(new MemSource(img2, { id: "d" }), after);
    assert.equal(await restoredHash(after, rerun.manifest.id, dir.path), sha256Hex(img2));
  }
});

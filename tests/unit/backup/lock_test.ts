import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, gc, list, prune, RepoError, Repository, verify } from "../../../lib/backup/mod.ts";
import { deadPid, MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;

function isLocked(e: unknown): boolean {
  return e instanceof RepoError && e.code === "LOCKED" && /locked: backup by pid/.test(e.message);
}

Deno.test("two backups at once: one fails with LOCKED, the other completes", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const other = await Repository.open(repo.path);
  const results = await Promise.allSettled([
    backup(new MemSource(pseudoRandom(400 * KiB, 1), { id: "d" }), repo),
    backup(new MemSource(pseudoRandom(400 * KiB, 2), { id: "d" }), other),
  ]);
  const ok = results.filter((r) => r.status === "fulfilled");
  const failed = results.filter((r) => r.status === "rejected");
  assert.equal(ok.length, 1);
  assert.equal(failed.length, 1);
  assert.ok(isLocked((failed[0] as PromiseRejectedResult).reason));
  const { backups, problems } = await list(repo);
  assert.equal(backups.length, 1);
  assert.equal(problems.length, 0);
  assert.equal((await verify(repo, { deep: true })).ok, true);
});

Deno.test("backup vs prune and gc: the maintenance op fails with LOCKED; lockWaitMs waits", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  await backup(new MemSource(pseudoRandom(40 * KiB, 1), { id: "d" }), repo);
  const running = backup(new MemSource(pseudoRandom(800 * KiB, 2), { id: "d" }), repo);
  await new Promise((r) => setTimeout(r, 5));
  await assert.rejects(prune(repo, { keepLast: 1 }), isLocked);
  await assert.rejects(gc(repo), isLocked);
  await assert.rejects(verify(repo, { deep: true }), isLocked);
  const waited = await prune(repo, { keepLast: 1 }, { lockWaitMs: 30_000 });
  await running;
  assert.equal(waited.removed.length, 1);
  assert.equal((await list(repo)).backups.length, 1);
});

Deno.test("Repository.lock() breaks a stale lock (dead pid, or older than the timeout)", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const lockPath = join(repo.path, "lock");
  const host = await repo.lock("probe").then(async (l) => {
    await l.release();
    return l.info.host;
  });
  // dead pid on this host
  await Deno.writeTextFile(
    lockPath,
    JSON.stringify({
      pid: await deadPid(),
      host,
      time: new Date().toISOString(),
      operation: "backup",
      token: "x",
    }),
  );
  assert.equal((await repo.lockHolder()).stale, true);
  await (await repo.lock("test")).release();
  // another host, recent: not stale
  await Deno.writeTextFile(
    lockPath,
    JSON.stringify({
      pid: 1,
      host: "elsewhere",
      time: new Date().toISOString(),
      operation: "backup",
      token: "y",
    }),
  );
  assert.equal((await repo.lockHolder()).stale, false);
  await assert.rejects(repo.lock("test"), isLocked);
  // another host, older than the timeout: stale
  await Deno.writeTextFile(
    lockPath,
    JSON.stringify({
      pid: 1,
      host: "elsewhere",
      time: "2020-01-01T00:00:00Z",
      operation: "backup",
      token: "z",
    }),
  );
  assert.equal((await repo.lockHolder()).stale, true);
  await assert.rejects(
    repo.lock("test", { breakStale: false }),
    (e: unknown) => e instanceof RepoError && e.code === "LOCKED",
  );
  const l = await repo.lock("test");
  assert.equal(l.info.pid, Deno.pid);
  await l.release();
  await l.release(); // idempotent
  assert.equal(await Deno.stat(lockPath).catch(() => null), null);
  // a garbage lock file is judged by its mtime
  await Deno.writeTextFile(lockPath, "garbage");
  await assert.rejects(
    repo.lock("test"),
    (e: unknown) => e instanceof RepoError && /unreadable/.test(e.message),
  );
  const shortStale = await Repository.open(repo.path, { lockStaleMs: 1 });
  await new Promise((r) => setTimeout(r, 20));
  await (await shortStale.lock("test")).release();
});

Deno.test("RepoLock.release() does not remove a lock someone else took over", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const l = await repo.lock("a");
  const other = JSON.stringify({ ...l.info, token: "someone-else" });
  await Deno.writeTextFile(join(repo.path, "lock"), other);
  await l.release();
  assert.equal(await Deno.readTextFile(join(repo.path, "lock")), other);
});

// forget by id, short id, prefix and `latest`; one bad manifest or index never
// blocks gc for good; unlock.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  forget,
  gc,
  list,
  prune,
  RepoError,
  Repository,
  resolveBackupId,
  shortId,
  unlock,
  verify,
} from "../../../lib/backup/mod.ts";
import { deadPid, MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;
const code = (c: string) => (e: unknown) => e instanceof RepoError && e.code === c;

async function threeBackups(path: string): Promise<{ repo: Repository; ids: string[] }> {
  const repo = await Repository.init(path, { chunkSize: 4 * KiB });
  const ids: string[] = [];
  for (const [seed, dev] of [[1, "d1"], [2, "d2"], [3, "d1"]] as const) {
    ids.push(
      (await backup(new MemSource(pseudoRandom(12 * KiB, seed), { id: dev }), repo)).manifest.id,
    );
  }
  return { repo, ids };
}

Deno.test("resolveBackupId() takes a full id, the short id, a prefix and latest", async () => {
  await using dir = await tempDir();
  const { repo, ids } = await threeBackups(join(dir.path, "repo"));
  assert.equal(await resolveBackupId(repo, ids[1]), ids[1]);
  assert.equal(await resolveBackupId(repo, shortId(ids[1])), ids[1]);
  assert.equal(await resolveBackupId(repo, shortId(ids[1]).slice(0, 6)), ids[1]);
  assert.equal(await resolveBackupId(repo, "latest"), ids[2]);
  assert.equal(await resolveBackupId(repo, "latest", { device: "d2" }), ids[1]);
  await assert.rejects(resolveBackupId(repo, "latest", { device: "nope" }), code("NOT_FOUND"));
  await assert.rejects(resolveBackupId(repo, "20261124T031600123Z-0a1b2c3d"), code("NOT_FOUND"));
  await assert.rejects(resolveBackupId(repo, "../../etc/passwd"), code("INVALID"));
  await assert.rejects(
    resolveBackupId(repo, "ffff"),
    (e: unknown) => code("NOT_FOUND")(e) || code("INVALID")(e),
  );
  // A date prefix shared by all three is ambiguous.
  await assert.rejects(resolveBackupId(repo, ids[0].slice(0, 8)), code("INVALID"));
});

Deno.test("forget() removes exactly the named backups; one bad spec removes nothing", async () => {
  await using dir = await tempDir();
  const { repo, ids } = await threeBackups(join(dir.path, "repo"));
  await assert.rejects(forget(repo, [ids[0], "nonsense!"]), code("INVALID"));
  assert.equal((await list(repo)).backups.length, 3);
  const dry = await forget(repo, [shortId(ids[0]), "latest"], { dryRun: true });
  assert.deepEqual(dry, { removed: [ids[0], ids[2]], dryRun: true });
  assert.equal((await list(repo)).backups.length, 3);
  const r = await forget(repo, [shortId(ids[0]), ids[0], "latest"]);
  assert.deepEqual(r.removed, [ids[0], ids[2]]);
  assert.deepEqual((await list(repo)).backups.map((b) => b.id), [ids[1]]);
  await gc(repo);
  assert.equal((await verify(repo, { deep: true })).ok, true);
});

Deno.test("an unreadable manifest: gc still works from its index; prune keeps it; forget removes it", async () => {
  await using dir = await tempDir();
  const { repo, ids } = await threeBackups(join(dir.path, "repo"));
  await Deno.writeTextFile(repo.manifestPath(ids[0]), '{"truncated":');
  const g = await gc(repo);
  assert.equal(g.chunksRemoved, 0, "its chunks are still referenced by its index");
  const p = await prune(repo, { keepLast: 1 });
  assert.deepEqual(p.problems.map((x) => x.id), [ids[0]]);
  assert.deepEqual((await forget(repo, [shortId(ids[0])])).removed, [ids[0]]);
  assert.ok((await gc(repo)).chunksRemoved > 0);
  assert.equal((await verify(repo)).ok, true);
});

Deno.test("an unreadable index blocks gc, naming the backup and forget; forget unblocks it", async () => {
  await using dir = await tempDir();
  const { repo, ids } = await threeBackups(join(dir.path, "repo"));
  await Deno.truncate(repo.indexPath(ids[1]), 100);
  await assert.rejects(gc(repo), (e: unknown) => {
    assert.ok(code("CORRUPT")(e));
    assert.match((e as Error).message, new RegExp(`blksnap forget ${ids[1]}`));
    return true;
  });
  await forget(repo, [ids[1]]);
  await gc(repo);
  assert.equal((await verify(repo, { deep: true })).ok, true);
});

Deno.test("unlock() removes a stale lock, refuses a live one without force", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  assert.deepEqual(await unlock(repo), { removed: null });
  const held = await repo.lock("backup");
  await assert.rejects(unlock(repo), code("LOCKED"));
  const forced = await unlock(repo, { force: true, dryRun: true });
  assert.equal(forced.removed?.info?.pid, Deno.pid);
  assert.ok((await repo.lockHolder()).exists, "a dry run removes nothing");
  await unlock(repo, { force: true });
  assert.equal((await repo.lockHolder()).exists, false);
  await held.release(); // not ours any more: nothing happens
  // A lock of a dead process on this host is stale: removed without force.
  const host = held.info.host;
  const info = {
    pid: await deadPid(),
    host,
    time: new Date().toISOString(),
    operation: "gc",
    token: "x",
  };
  await Deno.writeTextFile(repo.lockPath, JSON.stringify(info));
  assert.equal((await unlock(repo)).removed?.info?.operation, "gc");
  assert.equal((await repo.lockHolder()).exists, false);
});

// The worker-thread paths of backup, restore and verify when a thread dies
// or the run is aborted: the flow fails as the calling-thread flow does
// (no backup, a failed run recorded so the next backup is full, the lock
// released, a new restore target removed), no chunk is blamed for a dead
// thread, and a restore never writes a wrong byte.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  type BackupResult,
  list,
  RepoError,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { _internals, shutdownChunkWorkers } from "../../../lib/backup/chunk_workers.ts";
import { FakeCbt, MemSource, mixedImage, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;
const CHUNK = 16 * KiB;
const image = (): Uint8Array => mixedImage(640 * KiB + 123, 11, CHUNK);

/**
 * A repository at `path` holding one backup (on threads) of a tracked image,
 * whose tracker then saw every byte rewritten: the next backup reads it all.
 */
async function chain(
  path: string,
): Promise<{ repo: Repository; img: Uint8Array; cbt: FakeCbt; first: BackupResult }> {
  const repo = await Repository.init(path, { chunkSize: CHUNK });
  const img = image();
  const cbt = new FakeCbt(BigInt(img.length), 4 * KiB);
  cbt.take();
  const first = await backup(new MemSource(img, { id: "d", cbt }), repo, { workers: 2 });
  cbt.markWrite(0, img.length);
  cbt.take();
  return { repo, img, cbt, first };
}

/** Runs `fn` with every new pool's threads dying at their fourth step. */
async function withDyingThreads<T>(fn: () => Promise<T>): Promise<T> {
  const saved = _internals.workerUrl;
  shutdownChunkWorkers(); // the threads of earlier flows are healthy ones
  _internals.workerUrl = new URL("./_dying_chunk_worker.ts", import.meta.url).href;
  try {
    return await fn();
  } finally {
    _internals.workerUrl = saved;
    shutdownChunkWorkers();
  }
}

const noBlame = (e: unknown): boolean =>
  !(e instanceof RepoError && e.code === "BAD_CHUNK") && /thread died|chunk worker/.test(String(e));

Deno.test("a thread dying mid-backup fails it: no backup, lock released, the next one full", async () => {
  await using dir = await tempDir();
  const { repo, img, cbt, first } = await chain(join(dir.path, "r"));
  await withDyingThreads(() =>
    assert.rejects(
      backup(new MemSource(img, { id: "d", cbt }), repo, { workers: 2 }),
      /thread died/,
    )
  );
  assert.deepEqual((await list(repo)).backups.map((b) => b.id), [first.manifest.id]);
  assert.equal(await Deno.stat(join(repo.path, "lock")).catch(() => null), null);
  const v = await verify(repo, { deep: true, workers: 2, mark: false });
  assert.equal(v.ok, true);
  assert.equal(v.orphanIndexes.length, 0);
  const next = await backup(new MemSource(img, { id: "d", cbt }), repo, { workers: 2 });
  assert.equal(next.decision.mode, "full");
  assert.match(next.decision.reason, /previous run .* failed/);
});

Deno.test("a thread dying mid-verify fails the verify and reports no chunk bad", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: CHUNK });
  await backup(new MemSource(image(), { id: "d" }), repo, { workers: 2 });
  for (const mode of [{ deep: true, mark: true }, { scrub: true }]) {
    await withDyingThreads(() =>
      assert.rejects(verify(repo, { ...mode, workers: 2 }), noBlame, JSON.stringify(mode))
    );
  }
  const after = await verify(repo, { deep: true, workers: 0, mark: false });
  assert.equal(after.ok, true);
  assert.equal(after.badChunks.length, 0);
});

Deno.test("a thread dying mid-restore: a new target is removed, an existing one gets no wrong byte", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: CHUNK });
  const img = image();
  const { manifest } = await backup(new MemSource(img, { id: "d" }), repo, { workers: 2 });

  const fresh = join(dir.path, "fresh.img");
  await withDyingThreads(() =>
    assert.rejects(restore(repo, manifest.id, fresh, { workers: 2 }), noBlame)
  );
  assert.equal(await Deno.stat(fresh).catch(() => null), null);

  const target = join(dir.path, "target.img");
  await Deno.writeFile(target, new Uint8Array(img.length).fill(0xa5));
  // The threads die at the 7th decode at the latest, which starts once 4 chunks are written.
  await withDyingThreads(() =>
    assert.rejects(
      restore(repo, manifest.id, target, { workers: 2, concurrency: 3 }),
      (e: unknown) => noBlame(e) && /partly overwritten/.test(String(e)),
    )
  );
  const after = await Deno.readFile(target);
  for (let i = 0; i * CHUNK < img.length; i++) {
    const got = after.subarray(i * CHUNK, (i + 1) * CHUNK);
    const want = img.subarray(i * CHUNK, (i + 1) * CHUNK);
    const untouched = got.every((b) => b === 0xa5);
    assert.ok(untouched || sha256Hex(got) === sha256Hex(want), `chunk ${i} holds wrong bytes`);
  }
  // With every thread alive the same restore is exact.
  await restore(repo, manifest.id, target, { workers: 2 });
  assert.equal(sha256Hex(await Deno.readFile(target)), sha256Hex(img));
});

Deno.test("an aborted backup on threads leaves no backup, and the next one is full", async () => {
  await using dir = await tempDir();
  const { repo, img, cbt, first } = await chain(join(dir.path, "r"));
  const ac = new AbortController();
  const reason = new Error("operator stop");
  await assert.rejects(
    backup(new MemSource(img, { id: "d", cbt }), repo, {
      workers: 2,
      concurrency: 2,
      signal: ac.signal,
      onProgress: (p) => {
        if (p.bytesDone > 3 * CHUNK) ac.abort(reason);
      },
    }),
    (e: unknown) => e === reason,
  );
  assert.deepEqual((await list(repo)).backups.map((b) => b.id), [first.manifest.id]);
  assert.equal(await Deno.stat(join(repo.path, "lock")).catch(() => null), null);
  const next = await backup(new MemSource(img, { id: "d", cbt }), repo, { workers: 2 });
  assert.equal(next.decision.mode, "full");
  assert.match(next.decision.reason, /previous run .* failed/);
  const out = join(dir.path, "o.img");
  await restore(repo, next.manifest.id, out, { workers: 2 });
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
});

Deno.test("restore and verify on threads stop at their signal: a new target removed, nothing marked", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: CHUNK });
  const { manifest } = await backup(new MemSource(image(), { id: "d" }), repo, { workers: 2 });
  const target = join(dir.path, "out.img");
  const ac = new AbortController();
  const reason = new Error("restore stopped");
  await assert.rejects(
    restore(repo, manifest.id, target, {
      workers: 2,
      signal: ac.signal,
      onProgress: (p) => p.bytesDone >= 4 * CHUNK && ac.abort(reason),
    }),
    (e: unknown) => e === reason,
  );
  assert.equal(await Deno.stat(target).catch(() => null), null, "the partial new file is removed");
  for (const mode of [{ deep: true }, { scrub: true }]) {
    const ac2 = new AbortController();
    const reason2 = new Error("verify stopped");
    await assert.rejects(
      verify(repo, {
        ...mode,
        workers: 2,
        signal: ac2.signal,
        onProgress: (p) => p.bytesDone >= 4 * CHUNK && ac2.abort(reason2),
      }),
      (e: unknown) => e === reason2,
      JSON.stringify(mode),
    );
  }
  assert.equal((await repo.readManifest(manifest.id)).verification.state, "none", "nothing marked");
  assert.equal((await repo.lockHolder()).exists, false, "the lock is released");
});

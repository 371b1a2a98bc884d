// Every flow stops at its AbortSignal and throws its reason unwrapped: a
// restore to a new file removes the file, verify marks nothing, prune and
// gc stop between removals; the lock is released in every case.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, forget, gc, prune, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { FakeCbt, MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;

class Stop extends Error {}

async function setup(path: string): Promise<{ repo: Repository; ids: string[] }> {
  const repo = await Repository.init(path, { chunkSize: 4 * KiB });
  const ids: string[] = [];
  for (let i = 0; i < 4; i++) {
    ids.push(
      (await backup(new MemSource(pseudoRandom(512 * KiB, i + 1), { id: "d" }), repo)).manifest.id,
    );
  }
  return { repo, ids };
}

async function unlocked(repo: Repository): Promise<void> {
  assert.equal((await repo.lockHolder()).exists, false, "the lock is released");
}

Deno.test("restore(), verify(), prune() and gc() stop at their signal with its reason", async () => {
  await using dir = await tempDir();
  const { repo, ids } = await setup(join(dir.path, "repo"));

  const target = join(dir.path, "out.img");
  const ac1 = new AbortController();
  const reason1 = new Stop("restore stopped");
  await assert.rejects(
    restore(repo, ids[0], target, {
      concurrency: 1,
      signal: ac1.signal,
      onProgress: (p) => p.bytesDone >= 64 * KiB && ac1.abort(reason1),
    }),
    (e: unknown) => e === reason1,
  );
  assert.equal(await Deno.stat(target).catch(() => null), null, "the partial new file is removed");

  const ac2 = new AbortController();
  const reason2 = new Stop("verify stopped");
  await assert.rejects(
    verify(repo, {
      deep: true,
      concurrency: 1,
      signal: ac2.signal,
      onProgress: (p) => p.bytesDone >= 64 * KiB && ac2.abort(reason2),
    }),
    (e: unknown) => e === reason2,
  );
  assert.equal((await repo.readManifest(ids[0])).verification.state, "none", "nothing marked");
  await unlocked(repo);

  const ac3 = new AbortController();
  ac3.abort(new Stop("prune stopped"));
  await assert.rejects(prune(repo, { keepLast: 1 }, { signal: ac3.signal }), Stop);
  await assert.rejects(forget(repo, ["latest"], { signal: ac3.signal }), Stop);
  assert.equal((await repo.listBackupIds()).length, 4);

  await forget(repo, [ids[0], ids[1]]);
  const ac4 = new AbortController();
  let removals = 0;
  const reason4 = new Stop("gc stopped");
  const realRemove = repo.fs.remove.bind(repo.fs);
  repo.fs.remove = async (p: string) => {
    await realRemove(p);
    if (p.startsWith(repo.chunksDir) && ++removals === 1) ac4.abort(reason4);
  };
  await assert.rejects(gc(repo, { signal: ac4.signal }), (e: unknown) => e === reason4);
  repo.fs.remove = realRemove;
  // Removals go in batches of 200; the signal is checked between them.
  assert.equal(removals, 200, "gc stopped after the batch in flight");
  await unlocked(repo);
  assert.equal(
    (await verify(repo, { deep: true })).ok,
    true,
    "an interrupted gc leaves a valid repository",
  );
  assert.ok((await gc(repo)).chunksRemoved > 0, "the next gc finishes the work");
});

Deno.test("backup() with a signal aborted before it starts records the failed run: the next is full", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const img = pseudoRandom(64 * KiB, 9);
  const cbt = new FakeCbt(BigInt(img.length), 4 * KiB);
  await backup(new MemSource(img, { id: "d", cbt }), repo);
  cbt.take();
  const ac = new AbortController();
  ac.abort(new Stop("stopped before it began"));
  await assert.rejects(
    backup(new MemSource(img, { id: "d", cbt }), repo, { signal: ac.signal }),
    Stop,
  );
  await unlocked(repo);
  cbt.take();
  const next = await backup(new MemSource(img, { id: "d", cbt }), repo);
  assert.equal(next.decision.mode, "full");
  assert.match(next.decision.reason, /previous run .* failed: stopped before it began/);
});

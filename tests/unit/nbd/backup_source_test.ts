// BackupPointSource over a real local repository: reads equal the image,
// zero chunks cost no fetch and report as holes, a damaged chunk fails its
// range only (logged once with its digest), sequential reads prefetch.

import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, FileSource, Repository } from "../../../lib/backup/mod.ts";
import { BackupPointSource } from "../../../lib/nbd/backup_source.ts";
import { piecesToBytes } from "../../../lib/nbd/block_source.ts";
import { NbdErrno } from "../../../lib/nbd/protocol.ts";
import { mixedImage, tempDir } from "../backup/_helpers.ts";

const CHUNK = 64 * 1024;

/** An image of 20.5 chunks: chunks 2 and 7 all zeros, the rest mixed. */
function image(): Uint8Array {
  const img = mixedImage(20 * CHUNK + CHUNK / 2, 11);
  img.fill(0, 2 * CHUNK, 3 * CHUNK);
  img.fill(0, 7 * CHUNK, 8 * CHUNK);
  return img;
}

async function backedUp(dir: string, img: Uint8Array): Promise<{ repo: Repository; id: string }> {
  const path = join(dir, "disk.img");
  await Deno.writeFile(path, img);
  const repo = await Repository.init(join(dir, "repo"), { chunkSize: CHUNK });
  using source = await FileSource.open(path);
  const { manifest } = await backup(source, repo);
  return { repo, id: manifest.id };
}

Deno.test("BackupPointSource reads every range as the image held it, zero chunks without a fetch", async () => {
  await using dir = await tempDir();
  const img = image();
  const { repo, id } = await backedUp(dir.path, img);
  const source = await BackupPointSource.open(repo, id, { readAhead: 0 });
  assert.equal(source.size, img.length);
  assert.equal(source.writable, false);
  for (
    const [off, len] of [[0, img.length], [1, 1], [CHUNK - 3, 7], [2 * CHUNK, CHUNK], [
      img.length - 5,
      5,
    ], [6 * CHUNK + 100, 3 * CHUNK]]
  ) {
    const pieces = await source.read(off, len);
    assert.deepEqual(
      piecesToBytes(pieces, off, len),
      img.subarray(off, off + len),
      `${off}+${len}`,
    );
    assert.ok(pieces.every((p) => p.kind !== "error"));
  }
  const zeroOnly = await source.read(2 * CHUNK + 10, 100);
  assert.deepEqual(zeroOnly, [{ kind: "zero", offset: 2 * CHUNK + 10, length: 100 }]);
  // 19 stored chunks (+1 short tail) fetched once each; the rest were cache hits.
  assert.equal(source.stats.misses, 19);
  await source.close();
});

Deno.test("BackupPointSource.extents() reports exactly the index's zero chunks as holes", async () => {
  await using dir = await tempDir();
  const img = image();
  const { repo, id } = await backedUp(dir.path, img);
  const source = await BackupPointSource.open(repo, id);
  const ex = await source.extents(0, img.length);
  assert.deepEqual(ex, [
    { length: 2 * CHUNK, hole: false, zero: false },
    { length: CHUNK, hole: true, zero: true },
    { length: 4 * CHUNK, hole: false, zero: false },
    { length: CHUNK, hole: true, zero: true },
    { length: img.length - 8 * CHUNK, hole: false, zero: false },
  ]);
  assert.deepEqual(await source.extents(2 * CHUNK + 5, 10), [{
    length: 10,
    hole: true,
    zero: true,
  }]);
  for (let i = 0; i < 21; i++) assert.equal(source.isZeroChunk(i), i === 2 || i === 7);
});

Deno.test("BackupPointSource: a damaged chunk is EIO for its range only, logged once with its digest", async () => {
  await using dir = await tempDir();
  const img = image();
  const { repo, id } = await backedUp(dir.path, img);
  const log: string[] = [];
  const source = await BackupPointSource.open(repo, id, { log: (m) => log.push(m), readAhead: 0 });
  const hex = source.digestOf(4);
  const path = repo.chunkPath(hex);
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 1] ^= 0xff;
  await Deno.writeFile(path, bytes);

  const pieces = await source.read(3 * CHUNK, 3 * CHUNK);
  assert.deepEqual(pieces.map((p) => p.kind), ["data", "error", "data"]);
  const bad = pieces[1];
  assert.ok(bad.kind === "error");
  assert.equal(bad.errno, NbdErrno.EIO);
  assert.equal(bad.offset, 4 * CHUNK);
  assert.equal(bad.length, CHUNK);
  assert.match(bad.message, new RegExp(hex));
  assert.deepEqual(
    piecesToBytes([pieces[0]], 3 * CHUNK, CHUNK),
    img.subarray(3 * CHUNK, 4 * CHUNK),
  );
  // Read again: still EIO (nothing bad is cached), logged only once.
  assert.equal((await source.read(4 * CHUNK + 10, 10))[0].kind, "error");
  assert.equal(log.length, 1);
  assert.match(log[0], new RegExp(`chunk ${hex} \\(bytes ${4 * CHUNK}-${5 * CHUNK - 1}\\)`));
  assert.equal(source.stats.failedReads, 2);
  // A missing chunk is the same.
  await Deno.remove(repo.chunkPath(source.digestOf(9)));
  assert.equal((await source.read(9 * CHUNK, 1))[0].kind, "error");
});

Deno.test("BackupPointSource reads ahead of a sequential reader, not of random reads", async () => {
  await using dir = await tempDir();
  const img = image();
  const { repo, id } = await backedUp(dir.path, img);
  const random = await BackupPointSource.open(repo, id, { readAhead: 4 });
  for (const c of [10, 3, 15, 0]) await random.read(c * CHUNK + 512, 512);
  assert.equal(random.stats.prefetched, 0);

  const seq = await BackupPointSource.open(repo, id, { readAhead: 4 });
  const step = 16 * 1024;
  for (let off = 0; off < 4 * CHUNK; off += step) {
    const pieces = await seq.read(off, step);
    assert.deepEqual(piecesToBytes(pieces, off, step), img.subarray(off, off + step));
  }
  assert.ok(seq.stats.prefetched >= 4, `prefetched ${seq.stats.prefetched}`);
  // Chunks 4..6 were fetched ahead: reading them loads nothing on demand
  // (every new load is the next read-ahead).
  const before = seq.stats;
  await seq.read(4 * CHUNK, 3 * CHUNK);
  const after = seq.stats;
  assert.equal(after.hits - before.hits, 3);
  assert.equal(after.misses - before.misses, after.prefetched - before.prefetched);
});

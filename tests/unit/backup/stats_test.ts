// stats(): logical, deduplicated and stored bytes, per device; diffBackups():
// changed chunks and bytes between two backups.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, diffBackups, Repository, stats } from "../../../lib/backup/mod.ts";
import { MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;

Deno.test("stats() counts logical, deduplicated and stored bytes per device", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const img = pseudoRandom(32 * KiB, 1);
  img.fill(0, 8 * KiB, 12 * KiB); // one zero chunk
  await backup(new MemSource(img, { id: "d1", name: "/dev/a" }), repo);
  await backup(new MemSource(img, { id: "d1", name: "/dev/a" }), repo); // all deduplicated
  const other = img.slice(0, 8 * KiB); // shares its two chunks with d1
  await backup(new MemSource(other, { id: "d2", name: "/dev/b" }), repo);
  const s = await stats(repo);
  assert.equal(s.backups, 3);
  assert.equal(s.logicalBytes, BigInt(32 * KiB * 2 + 8 * KiB));
  assert.equal(s.chunks, 7, "8 chunks, one zero");
  assert.equal(s.dataBytes, 28 * KiB);
  assert.ok(s.storedBytes > 28 * KiB && s.storedBytes < 29 * KiB, "random data: raw + headers");
  assert.equal(s.missingChunks, 0);
  assert.deepEqual(s.devices.map((d) => [d.device, d.name, d.backups, d.chunks]), [
    ["d1", "/dev/a", 2, 7],
    ["d2", "/dev/b", 1, 2],
  ]);
  const only = await stats(repo, { device: "/dev/b" });
  assert.equal(only.backups, 1);
  assert.equal(only.dataBytes, 8 * KiB);
});

Deno.test("diffBackups() lists changed chunks as extents and the data only the newer one has", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const img = pseudoRandom(40 * KiB, 2);
  const a = (await backup(new MemSource(img, { id: "d" }), repo)).manifest;
  const img2 = img.slice();
  img2.set(pseudoRandom(6 * KiB, 3), 5 * KiB); // chunks 1 and 2
  img2.set(img.subarray(0, 4 * KiB), 36 * KiB); // chunk 9 becomes a copy of chunk 0
  const grown = new Uint8Array(44 * KiB);
  grown.set(img2);
  grown.set(pseudoRandom(4 * KiB, 4), 40 * KiB); // and one chunk more
  const b = (await backup(new MemSource(grown, { id: "d" }), repo)).manifest;
  const d = await diffBackups(repo, a.id, b.id);
  assert.equal(d.sameDevice, true);
  assert.equal(d.chunksChanged, 4);
  assert.equal(d.bytesChanged, 16 * KiB);
  assert.deepEqual(d.extents.map((e) => [Number(e.offset) / KiB, Number(e.length) / KiB]), [
    [4, 8],
    [36, 8],
  ]);
  assert.equal(d.chunksOnlyInB, 3, "chunk 9 is a copy of data a has");
  assert.equal(d.bytesOnlyInB, 12 * KiB);
  const same = await diffBackups(repo, a.id, a.id);
  assert.equal(same.chunksChanged, 0);
  assert.deepEqual(same.extents, []);
});

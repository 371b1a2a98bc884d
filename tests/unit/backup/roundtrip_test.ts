import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  FileSource,
  list,
  RepoError,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { MemSource, mixedImage, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

Deno.test("backup() + restore() round-trip random images of odd sizes", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 16384 });
  const sizes = [0, 1, 4095, 16384, 16385, 100_003, 1_048_577, 3 * 16384 - 7];
  for (const [n, size] of sizes.entries()) {
    const img = mixedImage(size, 1000 + n);
    const { manifest } = await backup(new MemSource(img, { name: `img${n}` }), repo);
    assert.equal(manifest.device.capacity, BigInt(size));
    assert.equal(manifest.mode, "full");
    const out = join(dir.path, `out${n}.img`);
    const r = await restore(repo, manifest.id, out);
    assert.equal(r.targetKind, "new-file");
    const back = await Deno.readFile(out);
    assert.equal(back.length, size);
    assert.equal(sha256Hex(back), sha256Hex(img), `size ${size}`);
  }
  const report = await verify(repo, { deep: true });
  assert.equal(report.ok, true);
  assert.equal(report.backupsChecked, sizes.length);
  assert.equal((await list(repo)).backups.length, sizes.length);
});

Deno.test("backup() stores zero chunks as nothing and deduplicates repeats", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
  const img = new Uint8Array(64 * 4096);
  const a = pseudoRandom(4096, 7);
  img.set(a, 0);
  img.set(a, 10 * 4096);
  img.set(a, 20 * 4096);
  img[40 * 4096 + 5] = 1;
  const { manifest } = await backup(new MemSource(img), repo);
  assert.equal(manifest.stats.chunksZero, 60);
  assert.equal(manifest.stats.chunksNew, 2);
  assert.equal(manifest.stats.chunksDeduplicated, 2);
  const out = join(dir.path, "out.img");
  const r = await restore(repo, manifest.id, out);
  assert.equal(r.chunksSkipped, 60);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
});

/** blksnap-style self-describing sectors: magic, crc32-like sum, seq, sector number, time. */
function sectorImage(sectors: number, seq: number): Uint8Array {
  const img = new Uint8Array(sectors * 512);
  const v = new DataView(img.buffer);
  for (let s = 0; s < sectors; s++) {
    const o = s * 512;
    v.setUint32(o, 0x424c4b53, true);
    v.setBigUint64(o + 8, BigInt(seq), true);
    v.setBigUint64(o + 16, BigInt(s), true);
    v.setBigUint64(o + 24, 1_700_000_000n + BigInt(s), true);
    for (let i = 32; i < 512; i++) img[o + i] = (s * 7 + i) & 0xff;
    let sum = 0;
    for (let i = 8; i < 512; i++) sum = (sum * 31 + img[o + i]) >>> 0;
    v.setUint32(o + 4, sum, true);
  }
  return img;
}

Deno.test("restore() of a sector-pattern image has no corrupt or misplaced sectors", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 65536 });
  const sectors = 16 * 2048 + 3; // 16 MiB + 3 sectors
  const img = sectorImage(sectors, 1);
  const imgPath = join(dir.path, "src.img");
  await Deno.writeFile(imgPath, img);
  using src = await FileSource.open(imgPath);
  const { manifest } = await backup(src, repo);
  const out = join(dir.path, "out.img");
  await restore(repo, manifest.id, out);
  const back = await Deno.readFile(out);
  const v = new DataView(back.buffer);
  let corrupt = 0, misplaced = 0;
  for (let s = 0; s < sectors; s++) {
    const o = s * 512;
    let sum = 0;
    for (let i = 8; i < 512; i++) sum = (sum * 31 + back[o + i]) >>> 0;
    if (v.getUint32(o, true) !== 0x424c4b53 || v.getUint32(o + 4, true) !== sum) corrupt++;
    else if (v.getBigUint64(o + 16, true) !== BigInt(s)) misplaced++;
  }
  assert.equal(corrupt, 0);
  assert.equal(misplaced, 0);
  assert.equal(sha256Hex(back), sha256Hex(img));

  // A target smaller than the image is refused and left untouched.
  const small = join(dir.path, "small.img");
  await Deno.writeFile(small, new Uint8Array(img.length - 512).fill(9));
  await assert.rejects(restore(repo, manifest.id, small), (e: unknown) => {
    assert.ok(e instanceof RepoError);
    assert.equal(e.code, "BAD_TARGET");
    assert.match(e.message, /smaller/);
    return true;
  });
  const after = await Deno.readFile(small);
  assert.ok(after.every((b) => b === 9));

  // An existing larger file is overwritten in place, zeros written explicitly.
  const big = join(dir.path, "big.img");
  await Deno.writeFile(big, new Uint8Array(img.length + 4096).fill(0xee));
  const r = await restore(repo, manifest.id, big);
  assert.equal(r.targetKind, "file");
  const bigBack = await Deno.readFile(big);
  assert.equal(sha256Hex(bigBack.subarray(0, img.length)), sha256Hex(img));
});

Deno.test("restore() writes zero chunks over old data in an existing file", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
  const img = new Uint8Array(10 * 4096);
  img.set(pseudoRandom(4096, 3), 4096);
  const { manifest } = await backup(new MemSource(img), repo);
  const out = join(dir.path, "out.img");
  await Deno.writeFile(out, new Uint8Array(img.length).fill(0x55));
  await restore(repo, manifest.id, out);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
});

Deno.test("restore() refuses a missing backup and a directory target", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
  const { manifest } = await backup(new MemSource(pseudoRandom(9000, 1)), repo);
  await assert.rejects(
    restore(repo, "20200101T000000000Z-00000000", join(dir.path, "x")),
    (e: unknown) => e instanceof RepoError && e.code === "NOT_FOUND",
  );
  await assert.rejects(
    restore(repo, "../../etc/passwd", join(dir.path, "x")),
    (e: unknown) => e instanceof RepoError && e.code === "INVALID",
  );
  await assert.rejects(
    restore(repo, manifest.id, dir.path),
    (e: unknown) => e instanceof RepoError && e.code === "BAD_TARGET",
  );
});

Deno.test("Repository.init() rejects bad chunk sizes and non-empty directories", async () => {
  await using dir = await tempDir();
  for (const chunkSize of [0, 1000, 4095, 3 * 4096, 2 ** 27]) {
    await assert.rejects(
      Repository.init(join(dir.path, `r${chunkSize}`), { chunkSize }),
      (e: unknown) => e instanceof RepoError && e.code === "INVALID",
    );
  }
  await Deno.writeTextFile(join(dir.path, "file"), "x");
  await assert.rejects(Repository.init(dir.path), (e: unknown) => e instanceof RepoError);
  await assert.rejects(
    Repository.open(join(dir.path, "none")),
    (e: unknown) => e instanceof RepoError && e.code === "NOT_FOUND",
  );
});

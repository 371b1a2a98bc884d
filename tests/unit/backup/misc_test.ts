import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  devNumbers,
  FileSource,
  list,
  mountedDevices,
  type Progress,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { MemSource, mixedImage, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;

Deno.test("backup() on worker threads and on the calling thread stores the same chunks", async () => {
  await using dir = await tempDir();
  const img = mixedImage(300 * KiB + 9, 4, 16 * KiB); // zero and repeated chunks
  const results = [];
  for (
    const [name, options] of [
      ["threads", { workers: 2 }],
      ["inline", { workers: 0, concurrency: 3 }],
      ["one at a time", { workers: 1, concurrency: 1 }],
    ] as const
  ) {
    const repo = await Repository.init(join(dir.path, name), { chunkSize: 16 * KiB });
    const r = await backup(new MemSource(img), repo, options);
    const out = join(dir.path, `${name}.img`);
    await restore(repo, r.manifest.id, out);
    assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img), name);
    results.push(r);
  }
  for (const r of results.slice(1)) {
    assert.equal(r.manifest.indexSha256, results[0].manifest.indexSha256);
    assert.deepEqual(r.manifest.stats, results[0].manifest.stats);
  }
  assert.ok(results[0].manifest.stats.chunksZero > 0 && results[0].manifest.stats.chunksNew > 8);
});

Deno.test("backup(), restore() and verify() report progress up to the total", async () => {
  await using dir = await tempDir();
  const img = mixedImage(200 * KiB + 1, 8);
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: 8 * KiB });
  const seen: Record<string, Progress[]> = { backup: [], restore: [], verify: [] };
  const { manifest } = await backup(new MemSource(img), repo, {
    onProgress: (p) => seen.backup.push(p),
  });
  await restore(repo, manifest.id, join(dir.path, "o.img"), {
    onProgress: (p) => seen.restore.push(p),
  });
  await verify(repo, { deep: true, onProgress: (p) => seen.verify.push(p) });
  for (const [name, ps] of Object.entries(seen)) {
    assert.ok(ps.length > 2, name);
    const last = ps.at(-1)!;
    assert.equal(last.bytesDone, last.bytesTotal, name);
    for (let i = 1; i < ps.length; i++) assert.ok(ps[i].bytesDone >= ps[i - 1].bytesDone, name);
  }
  assert.equal(seen.backup.at(-1)!.bytesTotal, img.length);
  assert.equal(seen.restore.at(-1)!.bytesTotal, img.length);
});

Deno.test("FileSource reads a file in blocks and reports its size as capacity", async () => {
  await using dir = await tempDir();
  const img = mixedImage(70_001, 2);
  const path = join(dir.path, "i.img");
  await Deno.writeFile(path, img);
  using src = await FileSource.open(path, { identity: { name: "disk", id: "uuid-1" } });
  assert.equal(src.capacity, 70_001n);
  const buf = new Uint8Array(1000);
  assert.equal(await src.read(69_500n, buf), 501);
  assert.deepEqual(buf.subarray(0, 501), img.subarray(69_500));
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: 4 * KiB });
  const { manifest } = await backup(src, repo);
  assert.equal(manifest.device.id, "uuid-1");
  src.close();
  src.close();
});

Deno.test("devNumbers() and mountedDevices() decode dev_t and mountinfo", () => {
  assert.deepEqual(devNumbers(0x0801), { major: 8, minor: 1 });
  assert.deepEqual(devNumbers((259 << 8) | 3), { major: 259, minor: 3 });
  // minor 300 (bits 8..19 stored at 20..31 of the low word)
  assert.deepEqual(devNumbers((300 & 0xff) | (253 << 8) | ((300 & ~0xff) << 12)), {
    major: 253,
    minor: 300,
  });
  const info = [
    "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw",
    "30 22 253:0 / /data rw - xfs /dev/mapper/vg-data rw",
    "",
    "garbage",
  ].join("\n");
  assert.deepEqual([...mountedDevices(info)], ["8:1", "253:0"]);
});

Deno.test("backup() aborted by its signal leaves no backup and releases the lock", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: 32 * KiB });
  const ac = new AbortController();
  const img = mixedImage(3 * 1024 * KiB, 3);
  await assert.rejects(
    backup(new MemSource(img), repo, {
      signal: ac.signal,
      onProgress: (p) => {
        if (p.bytesDone > 1024 * KiB) ac.abort();
      },
    }),
    (e: unknown) => e instanceof Error && /abort/i.test(e.message),
  );
  assert.equal((await list(repo)).backups.length, 0);
  assert.equal(await Deno.stat(join(repo.path, "lock")).catch(() => null), null);
  const again = await backup(new MemSource(img), repo);
  assert.equal(again.decision.mode, "full");
});

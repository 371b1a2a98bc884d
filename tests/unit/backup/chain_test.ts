import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, list, RepoError, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { FakeCbt, MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

function write(
  img: Uint8Array,
  cbt: FakeCbt,
  offset: number,
  length: number,
  seed: number,
): void {
  img.set(pseudoRandom(length, seed), offset);
  cbt.markWrite(offset, length);
}

// QEMU iotest 124 pattern, scaled to 34 MiB + an odd tail.
for (const blockSize of [4 * KiB, 64 * KiB, 128 * KiB]) {
  Deno.test(`backup() incremental chain restores every point byte-equal (CBT block ${blockSize / KiB} KiB)`, async () => {
    await using dir = await tempDir();
    const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 64 * KiB });
    const size = 34 * MiB + 1234;
    const img = pseudoRandom(size, 42);
    img.fill(0, 20 * MiB, 24 * MiB);
    const cbt = new FakeCbt(BigInt(size), blockSize);
    const refs: string[] = [];
    const ids: string[] = [];

    const take = async (expectMode: "full" | "incremental") => {
      cbt.take();
      const src = new MemSource(img, { id: "disk-uuid", name: "/dev/test", cbt });
      const { manifest, decision } = await backup(src, repo);
      assert.equal(decision.mode, expectMode, decision.reason);
      refs.push(sha256Hex(img));
      ids.push(manifest.id);
      return { manifest, src };
    };

    const full = await take("full");
    assert.equal(full.src.bytesRead, size);
    write(img, cbt, 0, 512, 1);
    write(img, cbt, 16 * MiB, 256 * KiB, 2);
    write(img, cbt, 32736 * KiB, 64 * KiB, 3); // straddles chunk/block borders
    const inc1 = await take("incremental");
    write(img, cbt, 0, 4096, 4);
    write(img, cbt, 8 * MiB, 352 * KiB, 5);
    write(img, cbt, 15872 * KiB, 1 * MiB, 6);
    write(img, cbt, size - 100, 100, 7); // the partial last chunk
    const inc2 = await take("incremental");

    // An incremental reads no more than the changed CBT blocks rounded out to chunks.
    for (const { manifest, src } of [inc1, inc2]) {
      const changed = cbt.changedExtents(full.manifest.cbt!.changesNumber);
      assert.ok(changed.length > 0);
      assert.ok(src.bytesRead <= manifest.stats.chunksRead * 64 * KiB);
      assert.ok(manifest.stats.chunksRead < manifest.stats.chunksTotal / 4);
      assert.equal(manifest.parent !== null, true);
    }
    assert.equal(inc1.manifest.parent, full.manifest.id);
    assert.equal(inc2.manifest.parent, inc1.manifest.id);

    for (const [n, id] of ids.entries()) {
      const out = join(dir.path, `p${n}.img`);
      await restore(repo, id, out);
      assert.equal(sha256Hex(await Deno.readFile(out)), refs[n], `point ${n}`);
      await Deno.remove(out);
    }
    // A fresh full of the live image equals the incremental chain's last point.
    cbt.take();
    const fresh = await backup(new MemSource(img, { id: "disk-uuid", cbt }), repo, { full: true });
    const a = join(dir.path, "fresh.img");
    await restore(repo, fresh.manifest.id, a);
    assert.equal(sha256Hex(await Deno.readFile(a)), refs[2]);
    assert.equal(fresh.manifest.stats.chunksNew, 0, "everything deduplicated");
    assert.equal((await verify(repo, { deep: blockSize === 64 * KiB })).ok, true);
  });
}

Deno.test("backup() failing mid-incremental leaves no backup and keeps the baseline", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 16 * KiB });
  const size = 2 * MiB + 77;
  const img = pseudoRandom(size, 9);
  const cbt = new FakeCbt(BigInt(size), 16 * KiB);
  cbt.take();
  const first = await backup(new MemSource(img, { id: "d", cbt }), repo);
  const baseline = first.manifest.cbt!.changesNumber;
  write(img, cbt, 100 * KiB, 300 * KiB, 1);
  write(img, cbt, 1 * MiB, 10, 2);
  cbt.take();
  await assert.rejects(
    backup(new MemSource(img, { id: "d", cbt, failAt: 1 * MiB + 5 }), repo),
    (e: unknown) =>
      e instanceof RepoError && e.code === "SOURCE" && /EIO|Input\/output/.test(e.message),
  );
  const { backups } = await list(repo);
  assert.equal(backups.length, 1);
  assert.equal(backups[0].cbt!.changesNumber, baseline);
  assert.equal(await Deno.stat(join(repo.path, "lock")).catch(() => null), null);
  assert.equal((await verify(repo)).orphanIndexes.length, 0);

  write(img, cbt, 1500 * KiB, 4 * KiB, 3);
  cbt.take();
  // The previous run failed: the next one is full and says why.
  const next = await backup(new MemSource(img, { id: "d", cbt }), repo);
  assert.equal(next.decision.mode, "full");
  assert.match(next.decision.reason, /previous run .* failed/);
  const out = join(dir.path, "o.img");
  await restore(repo, next.manifest.id, out);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));

  // With fullAfterFailedRun: false the cursor alone decides: incremental, still exact.
  write(img, cbt, 0, 1, 4);
  cbt.take();
  await assert.rejects(backup(new MemSource(img, { id: "d", cbt, failAt: 0 }), repo));
  write(img, cbt, 2 * MiB, 77, 5);
  cbt.take();
  const inc = await backup(new MemSource(img, { id: "d", cbt }), repo, {
    fullAfterFailedRun: false,
  });
  assert.equal(inc.decision.mode, "incremental");
  const out2 = join(dir.path, "o2.img");
  await restore(repo, inc.manifest.id, out2);
  assert.equal(sha256Hex(await Deno.readFile(out2)), sha256Hex(img));
});

Deno.test("backup() goes full when the tracker generation changes or the map is gone", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 16 * KiB });
  const img = pseudoRandom(512 * KiB, 5);
  let cbt = new FakeCbt(BigInt(img.length), 16 * KiB, "gen-A");
  cbt.take();
  await backup(new MemSource(img, { id: "d", cbt }), repo);
  cbt = new FakeCbt(BigInt(img.length), 16 * KiB, "gen-B"); // re-attached tracker
  cbt.take();
  const b = await backup(new MemSource(img, { id: "d", cbt }), repo);
  assert.equal(b.decision.mode, "full");
  assert.match(b.decision.reason, /generation changed/);
  const c = await backup(new MemSource(img, { id: "d" }), repo);
  assert.equal(c.decision.mode, "full");
  assert.match(c.decision.reason, /no CBT tracker/);
  // An explicit parent that does not exist
  cbt.take();
  const d = await backup(new MemSource(img, { id: "d", cbt }), repo, {
    parent: "20200101T000000000Z-00000000",
  });
  assert.equal(d.decision.mode, "full");
  assert.match(d.decision.reason, /unusable/);
});

Deno.test("backup() accepts lib/cbt_map.ts CbtMap as the source's CBT", async () => {
  const { CbtMap } = await import("../../../lib/cbt_map.ts");
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 16 * KiB });
  const size = 1 * MiB + 5;
  const img = pseudoRandom(size, 21);
  const fake = new FakeCbt(BigInt(size), 64 * KiB, "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a");
  fake.take();
  const asMap = () => new CbtMap({ ...fake.info, blockCount: fake.map.length }, fake.map.slice());
  await backup(new MemSource(img, { id: "d", cbt: asMap() }), repo);
  write(img, fake, 300 * KiB, 5, 1);
  fake.take();
  const src = new MemSource(img, { id: "d", cbt: asMap() });
  const inc = await backup(src, repo);
  assert.equal(inc.decision.mode, "incremental");
  assert.equal(inc.manifest.stats.chunksRead, 4); // one 64 KiB block = four 16 KiB chunks
  assert.equal(src.bytesRead, 64 * KiB);
  const out = join(dir.path, "o.img");
  await restore(repo, inc.manifest.id, out);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
});

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  type BackupResult,
  DIGEST_SIZE,
  RepoError,
  Repository,
  restore,
  verify,
  ZERO_DIGEST,
} from "../../../lib/backup/mod.ts";
import { toHex } from "../../../lib/backup/format.ts";
import { decodeIndex } from "../../../lib/backup/index_file.ts";
import { FakeCbt, MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;

/** Two devices; d1 has a full and an incremental sharing chunks; d2 is separate. */
interface Setup {
  repo: Repository;
  img: Uint8Array;
  img2: Uint8Array;
  other: Uint8Array;
  a: BackupResult;
  b: BackupResult;
  c: BackupResult;
  digestOf: (i: number) => string;
  cbt: FakeCbt;
}

async function setup(path: string): Promise<Setup> {
  const repo = await Repository.init(path, { chunkSize: 8 * KiB });
  const img = pseudoRandom(100 * KiB + 17, 3);
  const cbt = new FakeCbt(BigInt(img.length), 8 * KiB);
  cbt.take();
  const a = await backup(new MemSource(img, { id: "d1", cbt }), repo);
  const img2 = img.slice();
  img2.set(pseudoRandom(100, 9), 50 * KiB);
  cbt.markWrite(50 * KiB, 100);
  cbt.take();
  const b = await backup(new MemSource(img2, { id: "d1", cbt }), repo);
  const other = pseudoRandom(40 * KiB, 11);
  const c = await backup(new MemSource(other, { id: "d2" }), repo);
  const index = decodeIndex(await Deno.readFile(repo.indexPath(a.manifest.id)), "x");
  const digestOf = (i: number) =>
    toHex(index.digests.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE));
  return { repo, img, img2, other, a, b, c, digestOf, cbt };
}

Deno.test("verify() deep names a flipped-bit chunk and every backup using it", async () => {
  await using dir = await tempDir();
  const { repo, a, b, c, img2, other, digestOf, cbt } = await setup(join(dir.path, "repo"));
  const victim = digestOf(2); // shared by a and b
  const path = repo.chunkPath(victim);
  const bytes = await Deno.readFile(path);
  const bit = 8 * 5 + 3; // in the zstd frame header region past the magic
  bytes[bit >> 3] ^= 1 << (bit & 7);
  await Deno.writeFile(path, bytes);

  const fast = await verify(repo);
  assert.equal(fast.ok, true, "the fast check does not read chunk contents");

  const deep = await verify(repo, { deep: true });
  assert.equal(deep.ok, false);
  assert.equal(deep.badChunks.length, 1);
  assert.equal(deep.badChunks[0].digest, victim);
  assert.equal(deep.badChunks[0].problem, "corrupt");
  assert.deepEqual(deep.badChunks[0].backups, [a.manifest.id, b.manifest.id]);
  assert.deepEqual(
    deep.marked.sort((x, y) => x.id.localeCompare(y.id)),
    [
      { id: a.manifest.id, state: "failed" },
      { id: b.manifest.id, state: "failed" },
      { id: c.manifest.id, state: "ok" },
    ].sort((x, y) => x.id.localeCompare(y.id)),
  );
  assert.equal((await repo.readManifest(c.manifest.id)).verification.state, "ok");
  assert.equal((await repo.readManifest(b.manifest.id)).verification.badChunks, 1);

  // Restore of an affected backup fails naming the chunk; no wrong byte is written.
  const target = join(dir.path, "t.img");
  const old = new Uint8Array(img2.length).fill(0xaa);
  await Deno.writeFile(target, old);
  await assert.rejects(restore(repo, b.manifest.id, target, { concurrency: 1 }), (e: unknown) => {
    assert.ok(e instanceof RepoError);
    assert.equal(e.code, "BAD_CHUNK");
    assert.ok(e.message.includes(victim));
    assert.equal(e.path, path);
    return true;
  });
  const now = await Deno.readFile(target);
  for (let i = 0; i < now.length; i++) {
    if (now[i] !== old[i] && now[i] !== img2[i]) assert.fail(`wrong byte at ${i}`);
  }
  assert.ok(now.subarray(2 * 8 * KiB, 3 * 8 * KiB).every((x) => x === 0xaa));
  // A new-file restore that fails leaves no file behind.
  await assert.rejects(restore(repo, a.manifest.id, join(dir.path, "new.img")));
  assert.equal(await Deno.stat(join(dir.path, "new.img")).catch(() => null), null);
  // verifyFirst refuses before the target is touched.
  const t2 = join(dir.path, "t2.img");
  await Deno.writeFile(t2, old);
  await assert.rejects(restore(repo, b.manifest.id, t2, { verifyFirst: true }));
  assert.equal(sha256Hex(await Deno.readFile(t2)), sha256Hex(old));

  // The unaffected backup restores fine.
  const ok = join(dir.path, "ok.img");
  await restore(repo, c.manifest.id, ok);
  assert.equal(sha256Hex(await Deno.readFile(ok)), sha256Hex(other));

  // A fast verify now knows the chunk is bad without reading it.
  const known = await verify(repo);
  assert.equal(known.ok, false);
  assert.deepEqual(known.badChunks.map((c) => [c.digest, c.known]), [[victim, true]]);

  // The next backup of d1 is full because its parent failed verification, and
  // it rewrites the chunk the damage record names instead of deduplicating
  // against the bad copy: every older backup using it is whole again.
  cbt.take();
  const next = await backup(new MemSource(img2, { id: "d1", cbt }), repo);
  assert.equal(next.decision.mode, "full");
  assert.match(next.decision.reason, /failed verification/);
  assert.deepEqual(next.healed, [victim]);
  const pending = await verify(repo);
  assert.equal(pending.ok, true);
  assert.deepEqual(pending.healedChunks.map((h) => [h.digest, h.by, h.confirmed]), [
    [victim, next.manifest.id, false],
  ]);
  const healed = await verify(repo, { deep: true });
  assert.equal(healed.ok, true);
  assert.deepEqual(healed.healedChunks.map((h) => [h.digest, h.confirmed]), [[victim, true]]);
  assert.deepEqual(healed.healedBackups.sort(), [a.manifest.id, b.manifest.id].sort());
  assert.equal((await repo.readManifest(a.manifest.id)).verification.state, "ok");
  assert.equal((await repo.readDamage()).size, 0, "the deep verify dropped the healed entry");
  const again = join(dir.path, "again.img");
  await restore(repo, b.manifest.id, again);
  assert.equal(sha256Hex(await Deno.readFile(again)), sha256Hex(img2));
});

Deno.test("verify() deep catches bytes appended to a chunk and a truncated chunk", async () => {
  for (const damage of ["append", "truncate", "empty", "garbage"] as const) {
    await using dir = await tempDir();
    const { repo, a, digestOf } = await setup(join(dir.path, "repo"));
    const victim = digestOf(5);
    const path = repo.chunkPath(victim);
    const bytes = await Deno.readFile(path);
    const damaged = damage === "append"
      ? new Uint8Array([...bytes, 1, 2, 3, 4])
      : damage === "truncate"
      ? bytes.subarray(0, bytes.length - 3)
      : damage === "empty"
      ? new Uint8Array(0)
      : pseudoRandom(bytes.length, 1);
    await Deno.writeFile(path, damaged);
    const deep = await verify(repo, { deep: true, mark: false });
    assert.equal(deep.ok, false, damage);
    assert.deepEqual(deep.badChunks.map((c) => c.digest), [victim], damage);
    assert.ok(deep.badChunks[0].backups.includes(a.manifest.id));
  }
});

Deno.test("verify() fast reports a missing chunk; deep pass marks backups verified", async () => {
  await using dir = await tempDir();
  const { repo, a, digestOf } = await setup(join(dir.path, "repo"));
  const pass = await verify(repo, { deep: true });
  assert.equal(pass.ok, true);
  assert.equal(pass.marked.every((m) => m.state === "ok"), true);
  assert.equal((await repo.readManifest(a.manifest.id)).verification.state, "ok");
  assert.notEqual(digestOf(0), toHex(ZERO_DIGEST));
  await Deno.remove(repo.chunkPath(digestOf(0)));
  const fast = await verify(repo);
  assert.equal(fast.ok, false);
  assert.equal(fast.badChunks[0].problem, "missing");
  assert.equal(fast.marked.length, 0, "a fast verify does not mark");
});

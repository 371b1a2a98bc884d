// Damage that heals: repair() from a source that still holds the data, what
// is lost is listed; gc forgets damage of chunks nothing uses; an unreadable
// damage record is an error verify reports and a marking deep verify rewrites.
import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  FileSource,
  forget,
  gc,
  repair,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;

async function corrupt(path: string): Promise<void> {
  const bytes = await Deno.readFile(path);
  bytes[bytes.length - 1] ^= 0x40;
  await Deno.writeFile(path, bytes);
}

Deno.test("repair() rewrites corrupt and missing chunks a source holds and lists what is lost", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const imgA = pseudoRandom(32 * KiB, 1);
  const imgB = pseudoRandom(16 * KiB, 2);
  const a = (await backup(new MemSource(imgA, { id: "a" }), repo)).manifest;
  const b = (await backup(new MemSource(imgB, { id: "b" }), repo)).manifest;
  const digestsOf = async (id: string) => {
    const idx = await repo.readIndex(await repo.readManifest(id));
    return Array.from(
      { length: idx.chunkCount },
      (_, i) =>
        Array.from(
          idx.digests.subarray(i * 32, i * 32 + 32),
          (x) => x.toString(16).padStart(2, "0"),
        )
          .join(""),
    );
  };
  const [a0, a1] = await digestsOf(a.id);
  const [b0] = await digestsOf(b.id);
  await corrupt(repo.chunkPath(a0));
  await Deno.remove(repo.chunkPath(a1));
  await corrupt(repo.chunkPath(b0));
  const found = await verify(repo, { deep: true });
  assert.equal(found.badChunks.length, 3);

  // The source holds a's data only (an old image file of it).
  const image = join(dir.path, "a.img");
  await Deno.writeFile(image, imgA);
  const dry = await (async () => {
    using src = await FileSource.open(image);
    return await repair(repo, [src], { dryRun: true });
  })();
  assert.deepEqual(dry.repaired, [a0, a1].sort());
  assert.ok(
    (await Deno.stat(repo.chunkPath(a1)).catch(() => null)) === null,
    "dry run writes nothing",
  );

  using src = await FileSource.open(image);
  const r = await repair(repo, [src]);
  assert.equal(r.wanted, 3);
  assert.deepEqual(r.repaired, [a0, a1].sort());
  assert.deepEqual(r.lost.map((c) => [c.digest, c.problem, c.backups]), [[b0, "corrupt", [b.id]]]);
  assert.deepEqual(r.lostBackups, [b.id]);
  const after = await verify(repo, { deep: true });
  assert.deepEqual(after.badChunks.map((c) => c.digest), [b0]);
  assert.deepEqual(after.healedBackups, [a.id]);
  const out = join(dir.path, "a-restored.img");
  await restore(repo, a.id, out);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(imgA));
});

Deno.test("forget + gc drop the damage of chunks no backup uses any more", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const { manifest } = await backup(new MemSource(pseudoRandom(8 * KiB, 3)), repo);
  const idx = await repo.readIndex(manifest);
  const hex = Array.from(idx.digests.subarray(0, 32), (x) => x.toString(16).padStart(2, "0")).join(
    "",
  );
  await corrupt(repo.chunkPath(hex));
  await verify(repo, { deep: true });
  assert.deepEqual([...(await repo.readDamage()).keys()], [hex]);
  await forget(repo, [manifest.id]);
  await gc(repo);
  assert.equal((await repo.readDamage()).size, 0);
  assert.equal(await Deno.stat(repo.damagePath).catch(() => null), null);
});

Deno.test("an unreadable damage record fails verify; a marking deep verify writes it afresh", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  await backup(new MemSource(pseudoRandom(8 * KiB, 4)), repo);
  await Deno.writeTextFile(repo.damagePath, "{not json");
  const fast = await verify(repo);
  assert.equal(fast.ok, false);
  assert.match(fast.damageRecordError ?? "", /not valid JSON/);
  // A backup still runs (nothing is known to be bad).
  await backup(new MemSource(pseudoRandom(8 * KiB, 4)), repo);
  const deep = await verify(repo, { deep: true });
  assert.match(deep.damageRecordError ?? "", /not valid JSON/);
  assert.equal((await verify(repo)).ok, true, "the marking deep verify replaced the record");
});

import assert from "node:assert/strict";
import { join } from "node:path";
import {
  backup,
  CorruptError,
  gc,
  list,
  type Manifest,
  RepoError,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { encodeChunk } from "../../../lib/backup/chunk.ts";
import { sha256, toHex } from "../../../lib/backup/format.ts";
import { MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;

async function setup(path: string): Promise<{ repo: Repository; a: Manifest; b: Manifest }> {
  const repo = await Repository.init(path, { chunkSize: 8 * KiB });
  const a = await backup(new MemSource(pseudoRandom(50 * KiB, 1), { id: "d1" }), repo);
  const b = await backup(new MemSource(pseudoRandom(30 * KiB, 2), { id: "d2" }), repo);
  return { repo, a: a.manifest, b: b.manifest };
}

Deno.test("readIndex() refuses an index saved under another backup's name", async () => {
  await using dir = await tempDir();
  const { repo, a, b } = await setup(join(dir.path, "repo"));
  await Deno.copyFile(repo.indexPath(b.id), repo.indexPath(a.id));
  await assert.rejects(repo.readIndex(a), (e: unknown) => {
    assert.ok(e instanceof CorruptError);
    assert.equal(e.path, repo.indexPath(a.id));
    return true;
  });
  const report = await verify(repo);
  assert.equal(report.ok, false);
  assert.deepEqual(report.badBackups.map((x) => x.id), [a.id]);
  await assert.rejects(restore(repo, a.id, join(dir.path, "x.img")), CorruptError);
  assert.equal(await Deno.stat(join(dir.path, "x.img")).catch(() => null), null);
  await assert.rejects(gc(repo), (e: unknown) => e instanceof RepoError && e.code === "CORRUPT");
});

Deno.test("index checksum mismatch is a CorruptError naming the file", async () => {
  await using dir = await tempDir();
  const { repo, a } = await setup(join(dir.path, "repo"));
  const path = repo.indexPath(a.id);
  for (const offset of [9, 20, 33, 64, 64 + 32 * 3 + 7]) {
    const bytes = await Deno.readFile(path);
    const saved = bytes.slice();
    bytes[offset] ^= 0x10;
    await Deno.writeFile(path, bytes);
    await assert.rejects(repo.readIndex(a), (e: unknown) => {
      assert.ok(e instanceof CorruptError, String(e));
      assert.ok(e.message.includes(path));
      return true;
    });
    await Deno.writeFile(path, saved);
  }
  await repo.readIndex(a);
});

Deno.test("a missing chunk: verify errors, restore refuses before touching the target", async () => {
  await using dir = await tempDir();
  const { repo, a } = await setup(join(dir.path, "repo"));
  const idx = await repo.readIndex(a);
  const victim = toHex(idx.digests.subarray(32 * 3, 32 * 4));
  await Deno.remove(repo.chunkPath(victim));
  const report = await verify(repo);
  assert.equal(report.ok, false);
  assert.equal(report.badChunks[0].digest, victim);
  assert.deepEqual(report.badChunks[0].backups, [a.id]);
  const target = join(dir.path, "t.img");
  const before = pseudoRandom(60 * KiB, 99);
  await Deno.writeFile(target, before);
  await assert.rejects(restore(repo, a.id, target), (e: unknown) => {
    assert.ok(e instanceof RepoError && e.code === "BAD_CHUNK");
    assert.ok(e.message.includes(victim));
    return true;
  });
  assert.equal(sha256Hex(await Deno.readFile(target)), sha256Hex(before));
});

Deno.test("an extra unreferenced chunk is a warning; gc removes it; nothing else repaired", async () => {
  await using dir = await tempDir();
  const { repo } = await setup(join(dir.path, "repo"));
  const data = pseudoRandom(8 * KiB, 1234);
  const hex = toHex(sha256(data));
  await Deno.mkdir(join(repo.chunksDir, hex.slice(0, 2)), { recursive: true });
  await Deno.writeFile(repo.chunkPath(hex), await encodeChunk(data, 1));
  await Deno.writeFile(join(repo.chunksDir, hex.slice(0, 2), "not-a-chunk"), new Uint8Array(3));
  const report = await verify(repo, { deep: true, mark: false });
  assert.equal(report.ok, true);
  assert.deepEqual(report.unreferencedChunks, [hex]);
  assert.equal(report.strayFiles.length, 1);
  assert.ok(await repo.hasChunk(hex), "verify repairs nothing");
  const r = await gc(repo);
  assert.equal(r.chunksRemoved, 1);
  assert.equal(await repo.hasChunk(hex), false);
  assert.equal((await verify(repo, { deep: true, mark: false })).ok, true);
});

Deno.test("manifest tampering is reported by list and verify, never thrown as a crash", async () => {
  await using dir = await tempDir();
  const { repo, a, b } = await setup(join(dir.path, "repo"));
  const path = repo.manifestPath(a.id);
  const good = await Deno.readTextFile(path);
  const variants: [string, string][] = [
    ["not json", good.slice(0, 40)],
    ["wrong id", good.replace(a.id, b.id)],
    ["negative capacity", good.replace(/"capacity": "\d+"/, '"capacity": "-5"')],
    ["huge capacity", good.replace(/"capacity": "\d+"/, '"capacity": "99999999999999999999"')],
    ["capacity number", good.replace(/"capacity": "(\d+)"/, '"capacity": $1')],
    ["chunk count", good.replace(/"chunkCount": \d+/, '"chunkCount": 1e300')],
    ["bad state", good.replace('"state": "complete"', '"state": "partial"')],
    ["bad index digest", good.replace(/"indexSha256": "[0-9a-f]+"/, '"indexSha256": "00"')],
    ["array", "[]"],
    ["binary", "\u0000\u0001\u00ff"],
  ];
  for (const [name, text] of variants) {
    await Deno.writeTextFile(path, text);
    const l = await list(repo);
    assert.deepEqual(l.problems.map((p) => p.id), [a.id], name);
    assert.deepEqual(l.backups.map((x) => x.id), [b.id], name);
    assert.ok(l.problems[0].error.includes(path), name);
    const v = await verify(repo);
    assert.equal(v.ok, false, name);
    await assert.rejects(repo.readManifest(a.id), CorruptError, name);
  }
  // An oversized manifest is refused before it is read.
  await Deno.writeFile(path, new Uint8Array(2 * 1024 * 1024).fill(32));
  await assert.rejects(repo.readManifest(a.id), CorruptError);
  await Deno.writeTextFile(path, good);
  assert.equal((await verify(repo)).ok, true);
});

Deno.test("a tampered config is refused when opening", async () => {
  await using dir = await tempDir();
  const { repo } = await setup(join(dir.path, "repo"));
  const path = join(repo.path, "config.json");
  const good = await Deno.readTextFile(path);
  for (
    const text of [
      good.replace('"version": 1', '"version": 99'),
      good.replace(/"chunkSize": \d+/, '"chunkSize": 12345'),
      good.replace(/"chunkSize": \d+/, '"chunkSize": -8192'),
      good.replace('"zstd"', '"lz4"'),
      "{",
      "null",
    ]
  ) {
    await Deno.writeTextFile(path, text);
    await assert.rejects(Repository.open(repo.path), CorruptError, text.slice(0, 30));
  }
});

import assert from "node:assert/strict";
import { join } from "node:path";
import { fc } from "../../_deps.ts";
import {
  applyRetention,
  backup,
  gc,
  list,
  parseRetentionDuration,
  prune,
  RepoError,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { FakeCbt, MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;

function at(iso: string, n: number): { id: string; startTime: string } {
  return {
    id: `${iso.replace(/[-:]/g, "").replace(".", "")}-${String(n).padStart(8, "0")}`,
    startTime: iso,
  };
}

Deno.test("applyRetention() keeps last, daily, weekly and monthly as documented", () => {
  const backups = [
    at("2026-11-24T03:00:00.000Z", 1),
    at("2026-11-24T01:00:00.000Z", 2),
    at("2026-11-23T03:00:00.000Z", 3),
    at("2026-11-22T03:00:00.000Z", 4), // Sunday, ISO week 47
    at("2026-11-16T03:00:00.000Z", 5), // Monday, week 47
    at("2026-11-15T03:00:00.000Z", 6), // week 46
    at("2026-10-31T03:00:00.000Z", 7),
    at("2026-09-30T03:00:00.000Z", 8),
  ];
  assert.deepEqual([...applyRetention(backups, { keepLast: 2 }).keys()], [
    backups[0].id,
    backups[1].id,
  ]);
  assert.deepEqual(
    [...applyRetention(backups, { keepDaily: 3 }).keys()],
    [backups[0].id, backups[2].id, backups[3].id],
  );
  assert.deepEqual(
    [...applyRetention(backups, { keepWeekly: 3 }).keys()],
    [backups[0].id, backups[3].id, backups[5].id],
  );
  assert.deepEqual(
    [...applyRetention(backups, { keepMonthly: 3 }).keys()],
    [backups[0].id, backups[6].id, backups[7].id],
  );
  const both = applyRetention(backups, { keepLast: 1, keepMonthly: 1 });
  assert.deepEqual(both.get(backups[0].id), ["last 1", "monthly 2026-11"]);
});

Deno.test("applyRetention() always keeps the newest keepLast (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 0, max: 4e11 }), { minLength: 1, maxLength: 40 }),
      fc.record({
        keepLast: fc.integer({ min: 0, max: 5 }),
        keepDaily: fc.integer({ min: 0, max: 5 }),
        keepWeekly: fc.integer({ min: 0, max: 5 }),
        keepMonthly: fc.integer({ min: 0, max: 5 }),
      }),
      (times, policy) => {
        const backups = times.map((t, i) => at(new Date(1.7e12 + t).toISOString(), i));
        const keep = applyRetention(backups, policy);
        const newest = [...backups].sort((a, b) =>
          b.startTime.localeCompare(a.startTime) || b.id.localeCompare(a.id)
        );
        for (const b of newest.slice(0, policy.keepLast)) assert.ok(keep.has(b.id));
        const anyRule = policy.keepLast + policy.keepDaily + policy.keepWeekly + policy.keepMonthly;
        if (anyRule > 0) assert.ok(keep.has(newest[0].id), "the newest is always kept");
        assert.ok(keep.size <= anyRule);
      },
    ),
    { numRuns: 300 },
  );
});

Deno.test("prune() + gc() never remove a chunk a kept backup needs", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const size = 96 * KiB + 3;
  const images: Record<string, Uint8Array> = {};
  for (const dev of ["a", "b"]) {
    const img = pseudoRandom(size, dev === "a" ? 1 : 2);
    const cbt = new FakeCbt(BigInt(size), 4 * KiB);
    for (let round = 0; round < 5; round++) {
      if (round > 0) {
        const off = (round * 13 * KiB) % size;
        img.set(pseudoRandom(5000, round * 7 + dev.length), off);
        cbt.markWrite(off, 5000);
      }
      cbt.take();
      const { manifest } = await backup(new MemSource(img, { id: dev, cbt }), repo);
      images[manifest.id] = img.slice();
    }
  }
  await assert.rejects(
    prune(repo, {}),
    (e: unknown) => e instanceof RepoError && e.code === "INVALID",
  );
  const dry = await prune(repo, { keepLast: 2 }, { dryRun: true });
  assert.equal(dry.removed.length, 6);
  assert.equal((await list(repo)).backups.length, 10);
  const onlyA = await prune(repo, { keepLast: 3 }, { device: "a" });
  assert.equal(onlyA.removed.length, 2);
  const r = await prune(repo, { keepLast: 2 });
  assert.equal(r.removed.length, 4);
  assert.equal(r.kept.length, 4);
  const g = await gc(repo);
  assert.ok(g.chunksRemoved > 0);
  const { backups } = await list(repo);
  assert.deepEqual(backups.map((b) => b.id).sort(), r.kept.map((k) => k.id).sort());
  for (const b of backups) {
    const out = join(dir.path, `${b.id}.img`);
    await restore(repo, b.id, out);
    assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(images[b.id]));
  }
  const v = await verify(repo, { deep: true });
  assert.equal(v.ok, true);
  assert.deepEqual(v.unreferencedChunks, []);
  // The next incremental still works after its parent's own parents are gone.
  const gDry = await gc(repo, { dryRun: true });
  assert.equal(gDry.chunksRemoved, 0);
});

Deno.test("applyRetention() keep-hourly, keep-yearly and keep-within", () => {
  const at = (t: string, id = t) => ({ id, startTime: t });
  const backups = [
    at("2024-06-01T10:00:00.000Z"),
    at("2025-03-01T10:00:00.000Z"),
    at("2026-01-10T08:10:00.000Z"),
    at("2026-01-10T08:50:00.000Z"),
    at("2026-01-10T09:05:00.000Z"),
    at("2026-01-12T09:05:00.000Z"),
  ];
  const ids = (m: Map<string, string[]>) => [...m.keys()].sort();
  assert.deepEqual(ids(applyRetention(backups, { keepHourly: 3 })), [
    "2026-01-10T08:50:00.000Z",
    "2026-01-10T09:05:00.000Z",
    "2026-01-12T09:05:00.000Z",
  ]);
  assert.deepEqual(ids(applyRetention(backups, { keepYearly: 2 })), [
    "2025-03-01T10:00:00.000Z",
    "2026-01-12T09:05:00.000Z",
  ]);
  // Within 2 days of the newest (2026-01-12T09:05): from 2026-01-10T09:05 on.
  const within = applyRetention(backups, { keepWithin: "2d" });
  assert.deepEqual(ids(within), ["2026-01-10T09:05:00.000Z", "2026-01-12T09:05:00.000Z"]);
  assert.deepEqual(within.get("2026-01-12T09:05:00.000Z"), ["within 2d"]);
  assert.equal(applyRetention(backups, { keepWithin: "1y" }).size, 5);
  assert.equal(applyRetention(backups, { keepWithin: "1y1m" }).size, 5);
  assert.equal(applyRetention(backups, { keepWithin: "2y" }).size, 6);
  assert.deepEqual(parseRetentionDuration("1y6m2w3d4h"), {
    years: 1,
    months: 6,
    weeks: 2,
    days: 3,
    hours: 4,
  });
  for (const bad of ["", "7", "d", "7x", "-1d", "1.5d"]) {
    assert.throws(() => parseRetentionDuration(bad), RepoError, bad);
  }
});

Deno.test("prune() with only keep-within is a policy; a dry run takes no lock", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
  await backup(new MemSource(pseudoRandom(8192, 1), { id: "d" }), repo);
  await backup(new MemSource(pseudoRandom(8192, 2), { id: "d" }), repo);
  const lock = await repo.lock("backup");
  try {
    const dry = await prune(repo, { keepWithin: "1h" }, { dryRun: true });
    assert.equal(dry.kept.length, 2);
    await assert.rejects(prune(repo, { keepWithin: "1h" }), RepoError);
  } finally {
    await lock.release();
  }
  await assert.rejects(prune(repo, { keepWithin: "soon" }), RepoError);
});

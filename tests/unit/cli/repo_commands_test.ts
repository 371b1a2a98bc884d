import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../../../lib/backup/mod.ts";
import { cli, cliJson } from "./_helpers.ts";

async function tempDir(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "blksnap-cli-test-" });
}

function randomBytes(n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(out.subarray(i, i + 65536));
  return out;
}

/** A repository with 64 KiB chunks and two backups of an odd-sized image. */
async function fixture(): Promise<{ dir: string; repo: string; image: string; ids: string[] }> {
  const dir = await tempDir();
  const repo = join(dir, "repo");
  const image = join(dir, "disk.img");
  const data = randomBytes(300_000 + 123);
  data.fill(0, 65536, 3 * 65536); // two zero chunks
  await Deno.writeFile(image, data);
  const init = await cliJson("init", "-r", repo, "--chunk-size", "64K", "--no-encryption");
  assert.deepEqual(init.code, 0, init.stderr);
  const ids: string[] = [];
  for (let i = 0; i < 2; i++) {
    if (i === 1) {
      data.set(randomBytes(4096), 200_000);
      await Deno.writeFile(image, data);
    }
    const b = await cliJson("backup", "-r", repo, "--image", image, "--name", "disk0");
    assert.deepEqual(b.code, 0, b.stderr);
    assert.deepEqual(Object.keys(b.json), ["ok", "snapshotId", "backups", "events"]);
    const [one] = b.json.backups as { device: string; manifest: { id: string }; error: null }[];
    assert.deepEqual(one.device, "disk0");
    assert.deepEqual(one.error, null);
    ids.push(one.manifest.id);
  }
  return { dir, repo, image, ids };
}

Deno.test("init --json reports the new repository's config", async () => {
  const dir = await tempDir();
  try {
    const r = await cliJson(
      "init",
      "-r",
      join(dir, "r"),
      "-c",
      "1M",
      "--compression-level",
      "3",
      "--no-encryption",
    );
    assert.deepEqual(r.code, 0, r.stderr);
    assert.deepEqual(r.json.encrypted, false);
    assert.deepEqual(r.json.chunkSize, 1 << 20);
    assert.deepEqual(r.json.compression, { algorithm: "zstd", level: 3 });
    assert.match(String(r.json.id), /^[0-9a-f]{32}$/);
    const again = await cli("init", "-r", join(dir, "r"));
    assert.deepEqual(again.code, 2, "a non-empty directory is refused as a usage error");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("init encrypts by default: passphrase from --password-file; none is one KEY error", async () => {
  const dir = await tempDir();
  try {
    const pw = join(dir, "pw");
    await Deno.writeTextFile(pw, "a passphrase\nignored second line\n");
    const r = await cliJson(
      "--password-file",
      pw,
      "init",
      "-r",
      join(dir, "e"),
      "--kdf-log2n",
      "10",
    );
    assert.deepEqual(r.code, 0, r.stderr);
    assert.deepEqual([r.json.encrypted, r.json.version], [true, 2]);
    const repo = await Repository.open(join(dir, "e"), { passphrase: "a passphrase" });
    assert.ok(repo.encrypted);
    if (!Deno.stdin.isTerminal() && Deno.env.get("BLKSNAP_PASSWORD") === undefined) {
      const none = await cli("init", "-r", join(dir, "f"));
      assert.deepEqual(none.code, 1);
      assert.match(none.stderr, /KEY: New repository passphrase needed: set BLKSNAP_PASSWORD/);
      const list = await cli("list", "-r", join(dir, "e"));
      assert.deepEqual(list.code, 1);
      assert.match(list.stderr, /KEY: Repository passphrase needed/);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("backup --image then list --json: manifests with mode, reason and stats", async () => {
  const f = await fixture();
  try {
    const r = await cliJson("list", "-r", f.repo);
    assert.deepEqual(r.code, 0);
    const backups = r.json.backups as Record<string, unknown>[];
    assert.deepEqual(backups.map((b) => b.id), f.ids);
    const [first, second] = backups;
    assert.deepEqual(first.mode, "full");
    assert.deepEqual(first.reason, "no previous backup of this device");
    assert.deepEqual(
      (first.device as { capacity: unknown }).capacity,
      300_123,
      "capacity is a number",
    );
    assert.deepEqual((first.device as { name: string }).name, "disk0");
    assert.deepEqual((first.stats as { chunksZero: number }).chunksZero, 2);
    assert.deepEqual(second.mode, "full");
    assert.deepEqual(second.reason, "the device has no CBT tracker");
    assert((second.stats as { chunksNew: number }).chunksNew <= 2, "unchanged chunks deduplicated");
    assert.deepEqual(r.json.problems, []);
    const filtered = await cliJson("list", "-r", f.repo, "--device", "other");
    assert.deepEqual(filtered.json.backups, []);
    const human = await cli("list", "-r", f.repo);
    assert.match(human.stdout, /^ID +DEVICE +MODE +SIZE +READ +ADDED +VERIFIED +PARENT$/m);
    assert.deepEqual(human.stdout.trim().split("\n").length, 3);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("verify --json: ok on a good repository, exit 3 naming the chunk on damage", async () => {
  const f = await fixture();
  try {
    const ok = await cliJson("verify", "-r", f.repo, "--deep");
    assert.deepEqual(ok.code, 0, ok.stderr);
    assert.deepEqual(ok.json.ok, true);
    assert.deepEqual(ok.json.deep, true);
    assert.deepEqual(ok.json.backupsChecked, 2);
    assert.deepEqual((ok.json.marked as unknown[]).length, 2);
    const listed = await cliJson("list", "-r", f.repo);
    for (const b of listed.json.backups as { verification: { state: string } }[]) {
      assert.deepEqual(b.verification.state, "ok");
    }
    // flip a bit in one chunk
    const chunks: string[] = [];
    for await (const d of Deno.readDir(join(f.repo, "chunks"))) {
      for await (const c of Deno.readDir(join(f.repo, "chunks", d.name))) {
        chunks.push(join(f.repo, "chunks", d.name, c.name));
      }
    }
    const victim = chunks.sort()[0];
    const bytes = await Deno.readFile(victim);
    bytes[bytes.length >> 1] ^= 0x10;
    await Deno.writeFile(victim, bytes);
    const fast = await cliJson("verify", "-r", f.repo);
    assert.deepEqual(fast.code, 0, "the fast verify does not read chunk contents");
    const scrub = await cli("verify", "-r", f.repo, "--scrub");
    assert.deepEqual(scrub.code, 3, "a scrub reads every chunk and checks its CRC-32");
    assert.match(scrub.stdout, /^DAMAGED: scrub verify/);
    assert.match(
      scrub.stdout,
      new RegExp(`corrupt chunk ${victim.slice(victim.lastIndexOf("/") + 1)}`),
    );
    const bad = await cliJson("verify", "-r", f.repo, "--deep", "--no-mark");
    assert.deepEqual(bad.code, 3);
    assert.deepEqual(bad.json.ok, false);
    const badChunks = bad.json.badChunks as { digest: string; backups: string[] }[];
    assert.deepEqual(badChunks.length, 1);
    assert(victim.endsWith(badChunks[0].digest));
    assert(badChunks[0].backups.length >= 1);
    const human = await cli("verify", "-r", f.repo, "--deep", "--no-mark");
    assert.deepEqual(human.code, 3);
    assert.match(human.stdout, /^DAMAGED: deep verify/);
    assert.match(human.stdout, new RegExp(`corrupt chunk ${badChunks[0].digest}`));
    // restore refuses the damaged chunk
    const victimUser = badChunks[0].backups[0];
    const restored = await cli("restore", "-r", f.repo, victimUser, join(f.dir, "out.img"));
    assert.deepEqual(restored.code, 1);
    assert.match(restored.stderr, /BAD_CHUNK/);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("restore --json writes the image byte-equal, sparse for zero chunks", async () => {
  const f = await fixture();
  try {
    const target = join(f.dir, "restored.img");
    const r = await cliJson("restore", "-r", f.repo, f.ids[1], target);
    assert.deepEqual(r.code, 0, r.stderr);
    assert.deepEqual(r.json.backupId, f.ids[1]);
    assert.deepEqual(r.json.targetKind, "new-file");
    assert.deepEqual(r.json.chunksSkipped, 2);
    assert.deepEqual(r.json.capacity, 300_123);
    assert.deepEqual(await Deno.readFile(target), await Deno.readFile(f.image));
    const again = await cli("restore", "-r", f.repo, "20200101T000000000Z-00000000", target);
    assert.deepEqual(again.code, 1);
    assert.match(again.stderr, /NOT_FOUND/);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("prune --dry-run and prune --json keep the newest, then gc frees chunks", async () => {
  const f = await fixture();
  try {
    const dry = await cliJson("prune", "-r", f.repo, "--keep-last", "1", "--dry-run");
    assert.deepEqual(dry.code, 0, dry.stderr);
    assert.deepEqual(dry.json.dryRun, true);
    assert.deepEqual(dry.json.removed, [f.ids[0]]);
    assert.deepEqual((await cliJson("list", "-r", f.repo)).json.backups instanceof Array, true);
    assert.deepEqual(((await cliJson("list", "-r", f.repo)).json.backups as unknown[]).length, 2);
    const real = await cliJson("prune", "-r", f.repo, "--keep-last", "1");
    assert.deepEqual(real.json.removed, [f.ids[0]]);
    assert.deepEqual(real.json.kept, [{ id: f.ids[1], reasons: ["last 1"] }]);
    const gc = await cliJson("gc", "-r", f.repo);
    assert.deepEqual(gc.code, 0, gc.stderr);
    assert.deepEqual(typeof gc.json.chunksRemoved, "number");
    assert((gc.json.chunksRemoved as number) >= 1, "the old backup's own chunk is freed");
    const after = await cliJson("verify", "-r", f.repo, "--deep");
    assert.deepEqual(after.json.ok, true);
    assert.deepEqual(after.json.unreferencedChunks, []);
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("a repository locked by another writer exits 4", async () => {
  const f = await fixture();
  try {
    const repo = await Repository.open(f.repo);
    const lock = await repo.lock("test");
    try {
      const r = await cli("backup", "-r", f.repo, "--image", f.image);
      assert.deepEqual(r.code, 4);
      assert.match(r.stderr, /LOCKED/);
      const p = await cli("gc", "-r", f.repo);
      assert.deepEqual(p.code, 4);
    } finally {
      await lock.release();
    }
  } finally {
    await Deno.remove(f.dir, { recursive: true });
  }
});

Deno.test("BLKSNAP_REPO stands in for --repo", async () => {
  const f = await fixture();
  const before = Deno.env.get("BLKSNAP_REPO");
  Deno.env.set("BLKSNAP_REPO", f.repo);
  try {
    const r = await cliJson("list");
    assert.deepEqual(r.code, 0);
    assert.deepEqual((r.json.backups as unknown[]).length, 2);
  } finally {
    if (before === undefined) Deno.env.delete("BLKSNAP_REPO");
    else Deno.env.set("BLKSNAP_REPO", before);
    await Deno.remove(f.dir, { recursive: true });
  }
});

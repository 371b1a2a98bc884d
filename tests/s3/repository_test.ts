// Every repository flow against the real Ceph RGW (tests/s3/server.sh): full and incremental
// backups, restore byte-equal, deep verify, prune and gc; damage behind our back found and named;
// the server gone mid-backup; throttling; gc's grace and running-backup rules; Object Lock.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, copy, gc, prune, Repository, restore, verify } from "../../lib/backup/mod.ts";
import { newBackupId } from "../../lib/backup/format.ts";
import { S3Client } from "../../lib/backup/s3/client.ts";
import {
  FakeCbt,
  MemSource,
  plaintextHits,
  pseudoRandom,
  sha256Hex,
  tempDir,
  textImage,
} from "../unit/backup/_helpers.ts";
import { emptyAndDelete, ignore, server } from "./_server.ts";
import { startProxy } from "./_proxy.ts";

const KiB = 1024;
const MiB = 1024 * KiB;
let n = 0;

/** A fresh bucket name and its repository URL; the bucket is emptied and removed afterwards. */
function place(label: string, locked = false): { url: string; bucket: string } & AsyncDisposable {
  const bucket = `r-${label}-${Date.now().toString(36)}-${n++}`;
  return {
    url: `s3://${bucket}/hosts/db1`,
    bucket,
    async [Symbol.asyncDispose](): Promise<void> {
      await emptyAndDelete(new S3Client({ ...server!, bucket }), locked);
    },
  };
}

async function keys(bucket: string): Promise<string[]> {
  const out: string[] = [];
  for await (const o of new S3Client({ ...server!, bucket }).list("")) out.push(o.key);
  return out;
}

function image(size: number, seed: number): Uint8Array {
  const img = pseudoRandom(size, seed);
  img.fill(0, 2 * MiB, 3 * MiB); // zero chunks are not stored
  return img;
}

Deno.test(
  { name: "s3 repo: full, incremental, restore, deep verify, prune, gc", ignore },
  async () => {
    await using p = place("flows");
    await using dir = await tempDir();
    const repo = await Repository.init(p.url, { chunkSize: 256 * KiB });
    assert.equal(repo.backend.kind, "s3");
    const size = 8 * MiB;
    const img = image(size, 7);
    const cbt = new FakeCbt(BigInt(size), 64 * KiB);
    const full = await backup(new MemSource(img, { id: "disk", cbt }), repo);
    assert.equal(full.manifest.mode, "full");
    assert.equal(full.manifest.stats.chunksZero, 4);
    let objects = await keys(p.bucket);
    assert.ok(objects.every((k) => k.startsWith("hosts/db1/")), objects[0]);
    assert.equal(
      objects.filter((k) => k.includes("/chunks/")).length,
      full.manifest.stats.chunksNew,
    );
    assert.ok(objects.includes(`hosts/db1/backups/${full.manifest.id}.index`));
    assert.ok(objects.includes(`hosts/db1/backups/${full.manifest.id}.json`));
    assert.ok(!objects.some((k) => k.endsWith(".running") || k.endsWith("/lock")), "nothing left");

    // Incremental: two changed regions; only their chunks are read and uploaded.
    img.set(pseudoRandom(100 * KiB, 99), 1 * MiB);
    cbt.markWrite(1 * MiB, 100 * KiB);
    img.set(pseudoRandom(10, 98), 6 * MiB + 5);
    cbt.markWrite(6 * MiB + 5, 10);
    cbt.take();
    const inc = await backup(new MemSource(img, { id: "disk", cbt }), await Repository.open(p.url));
    assert.equal(inc.manifest.mode, "incremental");
    assert.equal(inc.manifest.stats.chunksRead, 2);
    assert.equal(inc.manifest.stats.chunksNew, 2);

    // Restore both from a freshly opened repository (no cache of this process).
    const reopened = await Repository.open(p.url);
    const out = join(dir.path, "restored.img");
    await restore(reopened, inc.manifest.id, out);
    assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
    const deep = await verify(reopened, { deep: true });
    assert.ok(deep.ok, JSON.stringify(deep.badChunks));
    assert.equal(deep.backupsChecked, 2);
    assert.deepEqual(deep.marked.map((m) => m.state), ["ok", "ok"]);

    // Prune the full backup; gc (no grace: nothing runs) frees its two replaced chunks.
    const pr = await prune(reopened, { keepLast: 1 });
    assert.deepEqual(pr.removed, [full.manifest.id]);
    const g = await gc(reopened, { graceMs: 0 });
    assert.equal(g.chunksRemoved, 2);
    assert.equal(g.chunksSpared, 0);
    objects = await keys(p.bucket);
    assert.equal(objects.filter((k) => k.includes("/chunks/")).length, g.chunksKept);
    await restore(reopened, inc.manifest.id, out, { resize: true });
    assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
  },
);

Deno.test(
  { name: "s3 repo: manifests and indexes come from the local cache once read", ignore },
  async () => {
    await using p = place("cache");
    await using cache = await tempDir();
    Deno.env.set("BLKSNAP_CACHE", cache.path);
    try {
      const repo = await Repository.init(p.url, { chunkSize: 256 * KiB });
      const { manifest } = await backup(new MemSource(image(2 * MiB, 50), { id: "d" }), repo);
      await using proxy = startProxy(server!.endpoint, server!.credentials, () => "pass");
      const via = { s3: { settings: { ...server!, endpoint: proxy.endpoint } } };
      const readAll = async () => {
        const r = await Repository.open(p.url, via);
        for (const id of await r.listBackupIds()) await r.readIndex(await r.readManifest(id));
      };
      const gets = () =>
        proxy.log.filter((l) => l.method === "GET" && /\/backups\/.+\.(json|index)$/.test(l.path))
          .length;
      await readAll();
      assert.equal(gets(), 2); // first time: the manifest and the index are downloaded
      await readAll();
      assert.equal(gets(), 2); // then both come from the cache (one listing, no GET)
      // A deep verify rewrites the manifest (new ETag): the next read downloads it again, and
      // verify itself always reads the index from the store.
      await verify(await Repository.open(p.url, via), { deep: true });
      const before = gets();
      const r = await Repository.open(p.url, via);
      assert.equal((await r.readManifest((await r.listBackupIds())[0])).verification.state, "ok");
      assert.equal(gets(), before + 1);
      const files = [...Deno.readDirSync(join(cache.path, repo.config.id))].map((e) => e.name);
      assert.equal(files.filter((n) => n.startsWith(manifest.id) && n.endsWith(".json")).length, 1);
    } finally {
      Deno.env.delete("BLKSNAP_CACHE");
    }
  },
);

Deno.test({
  name: "s3 repo: objects deleted or altered behind our back are found and named",
  ignore,
}, async () => {
  await using p = place("damage");
  const repo = await Repository.init(p.url, { chunkSize: 256 * KiB });
  const { manifest } = await backup(new MemSource(image(4 * MiB, 3), { id: "d" }), repo);
  const raw = new S3Client({ ...server!, bucket: p.bucket });
  const chunks = (await keys(p.bucket)).filter((k) => k.includes("/chunks/")).sort();
  // Delete one chunk, flip a byte inside another (same size), truncate a third.
  await raw.deleteObject(chunks[0]);
  const altered = (await raw.getObject(chunks[1]))!;
  altered[altered.length - 7] ^= 0x40;
  await raw.putObject(chunks[1], altered);
  const cut = (await raw.getObject(chunks[2]))!;
  await raw.putObject(chunks[2], cut.subarray(0, cut.length - 1));
  const name = (k: string) => k.slice(k.lastIndexOf("/") + 1);

  const fast = await verify(repo);
  assert.equal(fast.ok, false);
  assert.deepEqual(
    fast.badChunks.map((c) => [c.digest, c.problem]).sort(),
    [[name(chunks[0]), "missing"]],
  );
  const deep = await verify(repo, { deep: true });
  const bad = new Map(deep.badChunks.map((c) => [c.digest, c]));
  assert.equal(bad.get(name(chunks[0]))?.problem, "missing");
  assert.equal(bad.get(name(chunks[1]))?.problem, "corrupt");
  assert.match(bad.get(name(chunks[1]))!.detail, /CRC/);
  assert.equal(bad.get(name(chunks[2]))?.problem, "corrupt");
  for (const c of deep.badChunks) {
    assert.deepEqual(c.backups, [manifest.id]);
    assert.ok(c.path.startsWith(`${p.url}/chunks/`), c.path); // named by its URL
  }
  assert.equal(deep.marked[0].state, "failed");

  // An altered manifest and an index swapped in from another backup are refused, named.
  const second = await backup(new MemSource(image(2 * MiB, 4), { id: "other" }), repo);
  const prefix = "hosts/db1/backups/";
  await raw.putObject(
    `${prefix}${manifest.id}.index`,
    (await raw.getObject(`${prefix}${second.manifest.id}.index`))!,
  );
  const v = await verify(repo);
  assert.deepEqual(v.badBackups.map((b) => b.id), [manifest.id]);
  assert.match(v.badBackups[0].path, /\.index$/);
});

/** Run the CLI as an operator does (`deno run -A cli/main.ts ...`) with `env` added. */
async function cli(args: string[], env: Record<string, string> = {}): Promise<
  { code: number; stdout: string; stderr: string }
> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli/main.ts", import.meta.url).pathname, ...args],
    env: { ...env, NO_COLOR: "1" },
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test({
  name: "s3 repo: the server gone mid-backup fails it cleanly; the next one works",
  ignore,
}, async () => {
  await using p = place("outage");
  await using dir = await tempDir();
  await Repository.init(p.url, { chunkSize: 256 * KiB });
  const img = image(8 * MiB, 11);
  const file = join(dir.path, "disk.img");
  await Deno.writeFile(file, img);
  let puts = 0;
  let down = false;
  await using proxy = startProxy(server!.endpoint, server!.credentials, (req) => {
    // After 10 chunk uploads the server is gone: every connection breaks, until `down` is reset.
    if (req.method === "PUT" && new URL(req.url).pathname.includes("/chunks/") && ++puts > 10) {
      down = true;
    }
    return down ? "drop" : "pass";
  });
  // The first run, a separate process as under cron, talks to the server through the proxy.
  const failed = await cli(["backup", "-r", p.url, "--image", file, "--name", "d"], {
    BLKSNAP_S3_ENDPOINT: proxy.endpoint,
    BLKSNAP_S3_MAX_ATTEMPTS: "3", // give up in seconds, not the default minute
  });
  assert.notEqual(failed.code, 0, failed.stdout + failed.stderr);
  assert.match(failed.stderr + failed.stdout, /gave up after \d+ attempts/);
  down = false;
  // The repository is valid: no backup is listed and nothing referenced is damaged.
  const repo = await Repository.open(p.url);
  assert.deepEqual(await repo.listBackupIds(), []);
  assert.ok((await verify(repo)).ok);
  // The next run (another process) breaks the dead run's lock and backs up.
  const ok = await cli(["backup", "-r", p.url, "--image", file, "--name", "d"]);
  assert.equal(ok.code, 0, ok.stdout + ok.stderr);
  const ids = await repo.listBackupIds();
  assert.equal(ids.length, 1);
  const deep = await verify(repo, { deep: true });
  assert.ok(deep.ok);
  await restore(repo, ids[0], join(dir.path, "r.img"));
  assert.equal(sha256Hex(await Deno.readFile(join(dir.path, "r.img"))), sha256Hex(img));
});

Deno.test(
  { name: "s3 repo: a backup through a throttling, failing proxy succeeds", ignore },
  async () => {
    await using p = place("throttle");
    await Repository.init(p.url, { chunkSize: 256 * KiB });
    let seen = 0;
    const faults = ["slowdown", "error500", "throttle429", "drop"] as const;
    await using proxy = startProxy(
      server!.endpoint,
      server!.credentials,
      // One request in three fails, in turn: SlowDown, 500, 429, a broken connection.
      () => (seen++ % 3 === 1 ? faults[(seen >> 1) % 4] : "pass"),
    );
    const repo = await Repository.open(p.url, {
      s3: {
        settings: { ...server!, endpoint: proxy.endpoint },
        client: { retry: { baseDelayMs: 5, maxDelayMs: 40 } },
      },
    });
    const img = image(6 * MiB, 21);
    const { manifest } = await backup(new MemSource(img, { id: "d" }), repo);
    assert.ok(proxy.log.some((l) => l.fault === "slowdown"));
    assert.ok(proxy.log.some((l) => l.fault === "drop"));
    await using dir = await tempDir();
    await restore(repo, manifest.id, join(dir.path, "r.img"));
    assert.equal(sha256Hex(await Deno.readFile(join(dir.path, "r.img"))), sha256Hex(img));
  },
);

Deno.test(
  { name: "s3 repo: gc spares young chunks and those of a running backup", ignore },
  async () => {
    await using p = place("grace");
    const repo = await Repository.init(p.url, { chunkSize: 256 * KiB });
    const first = await backup(new MemSource(image(2 * MiB, 5), { id: "d" }), repo);
    await repo.removeBackup(first.manifest.id);
    // Default grace (1 hour): the unreferenced chunks were just written, nothing is removed.
    const spared = await gc(repo);
    assert.equal(spared.chunksRemoved, 0);
    assert.ok(spared.chunksSpared > 0);
    // A running backup's marker (started a minute ago) spares what is younger than it.
    const id = newBackupId(new Date(Date.now() - 60_000));
    await repo.backend.put(`runs/${id}.running`, new TextEncoder().encode("{}"));
    const withRunner = await gc(repo, { graceMs: 0 });
    assert.equal(withRunner.chunksRemoved, 0, JSON.stringify(withRunner));
    await repo.backend.delete(`runs/${id}.running`);
    const freed = await gc(repo, { graceMs: 0 });
    assert.equal(freed.chunksRemoved, spared.chunksSpared);
  },
);

Deno.test({
  name: "s3 repo: a running backup's parent is kept by prune and its chunks by gc",
  ignore,
}, async () => {
  await using p = place("parent");
  const repo = await Repository.init(p.url, { chunkSize: 256 * KiB });
  const a = await backup(new MemSource(image(2 * MiB, 40), { id: "d" }), repo);
  const b = await backup(new MemSource(image(2 * MiB, 41), { id: "d" }), repo);
  // Another host's backup runs with A as its parent (the S3 lock does not stop it).
  const running = newBackupId(new Date(Date.now() - 1000));
  await repo.backend.put(
    `runs/${running}.running`,
    new TextEncoder().encode(JSON.stringify({ id: running, device: "d", parent: a.manifest.id })),
  );
  const pr = await prune(repo, { keepLast: 1 });
  assert.deepEqual(pr.removed, []);
  assert.deepEqual(pr.kept.find((k) => k.id === a.manifest.id)?.reasons, [
    `parent of running backup ${running}`,
  ]);
  // A removed anyway (by hand, or by a prune that did not see the marker): gc deletes nothing.
  await repo.removeBackup(a.manifest.id);
  const g = await gc(repo, { graceMs: 0 });
  assert.equal(g.chunksRemoved, 0);
  assert.match(g.sparedBecause ?? "", new RegExp(`parent ${a.manifest.id} of running backup`));
  // The run ended: its marker is gone, A's own chunks go.
  await repo.backend.delete(`runs/${running}.running`);
  const after = await gc(repo, { graceMs: 0 });
  assert.ok(after.chunksRemoved > 0);
  assert.ok((await verify(repo, { deep: true })).ok);
  assert.deepEqual(await repo.listBackupIds(), [b.manifest.id]);
});

Deno.test({
  name: "s3 repo: Object Lock retention on every object; gc keeps retained chunks",
  ignore,
}, async () => {
  await using p = place("locked", true);
  const repo = await Repository.init(p.url, { chunkSize: 256 * KiB, objectLockDays: 1 });
  assert.equal(repo.config.objectLockDays, 1);
  const { manifest } = await backup(new MemSource(image(2 * MiB, 8), { id: "d" }), repo);
  const raw = new S3Client({ ...server!, bucket: p.bucket });
  for (const k of await keys(p.bucket)) {
    if (k.endsWith("/lock")) continue;
    const r = await raw.getRetention(k);
    assert.ok(r && r.until.getTime() > Date.now() + 23 * 3_600_000, `${k}: ${JSON.stringify(r)}`);
  }
  // Removing the backup hides it (delete markers); its chunks stay retained.
  await repo.removeBackup(manifest.id);
  assert.deepEqual(await repo.listBackupIds(), []);
  const g = await gc(await Repository.open(p.url), { graceMs: 0 });
  assert.equal(g.chunksRemoved, 0);
  assert.equal(g.chunksRetained, manifest.stats.chunksNew);
  // A repository cannot ask for Object Lock in a bucket made without it.
  await using q = place("nolock");
  await new S3Client({ ...server!, bucket: q.bucket }).createBucket();
  await assert.rejects(
    Repository.init(q.url, { objectLockDays: 1 }),
    /has no Object Lock/,
  );
});

Deno.test({
  name: "s3 repo: encrypted: no object holds plaintext; copy local <-> S3 across keys",
  ignore,
}, async () => {
  await using p = place("enc");
  await using dir = await tempDir();
  const FAST = { N: 1 << 10, r: 8, p: 1 };
  const img = new Uint8Array(4 * MiB);
  img.set(textImage(2 * MiB, 5));
  img.set(pseudoRandom(2 * MiB, 6), 2 * MiB);
  // A fast local plain backup, shipped to an encrypted S3 repository afterwards.
  const local = await Repository.init(join(dir.path, "local"), { chunkSize: 256 * KiB });
  const { manifest } = await backup(new MemSource(img, { name: "/dev/vault" }), local);
  const remote = await Repository.init(p.url, {
    chunkSize: 256 * KiB,
    passphrase: "s3 secret",
    scrypt: FAST,
  });
  const c1 = await copy(local, remote, [manifest.id]);
  assert.deepEqual(c1.copied, [manifest.id]);
  assert.equal(c1.reencrypted, true);
  assert.equal(c1.chunksCopied, manifest.stats.chunksNew);
  const again = await copy(local, remote, [manifest.id]);
  assert.deepEqual(again.skipped, [manifest.id]);
  assert.equal(again.chunksCopied, 0);
  // Not one object of the bucket holds 24 bytes of the source, nor the device name.
  const raw = new S3Client({ ...server!, bucket: p.bucket });
  let hits = 0;
  for (const k of await keys(p.bucket)) {
    const body = (await raw.getObject(k))!;
    hits += plaintextHits(body, img);
    if (!k.includes("/runs/")) {
      assert.ok(!new TextDecoder("latin1").decode(body).includes("/dev/vault"), k);
    }
  }
  assert.equal(hits, 0);
  // Restore from the S3 copy, byte-equal; deep verify passes; then copy back to a new plain
  // local repository and restore from there too.
  const opened = await Repository.open(p.url, { passphrase: "s3 secret" });
  await restore(opened, manifest.id, join(dir.path, "a.img"));
  assert.equal(sha256Hex(await Deno.readFile(join(dir.path, "a.img"))), sha256Hex(img));
  assert.ok((await verify(opened, { deep: true })).ok);
  const back = await Repository.init(join(dir.path, "back"), { chunkSize: 256 * KiB });
  const c2 = await copy(opened, back, [manifest.id]);
  assert.equal(c2.reencrypted, true);
  await restore(back, manifest.id, join(dir.path, "b.img"));
  assert.equal(sha256Hex(await Deno.readFile(join(dir.path, "b.img"))), sha256Hex(img));
  // A wrong passphrase is one clear error.
  await assert.rejects(
    Repository.open(p.url, { passphrase: "nope" }),
    /^RepoError: Wrong passphrase/,
  );
});

Deno.test({
  name: "s3 repo: the CLI end to end: init (encrypted), backup, list, key, copy, restore",
  ignore,
}, async () => {
  await using p = place("cli");
  await using dir = await tempDir();
  const img = pseudoRandom(3 * MiB, 31);
  const file = join(dir.path, "disk.img");
  await Deno.writeFile(file, img);
  const pwFile = join(dir.path, "pw");
  await Deno.writeTextFile(pwFile, "first passphrase\n");
  const run = async (args: string[], env: Record<string, string> = {}) => {
    const r = await cli(args, env);
    assert.equal(r.code, 0, `blksnap ${args.join(" ")}: ${r.stdout}${r.stderr}`);
    return r.stdout;
  };
  const pw = ["--password-file", pwFile];
  // scrypt at 2^12 (the default 2^17 costs seconds a command on this shared machine).
  await run([...pw, "init", "-r", p.url, "--chunk-size", "256K", "--kdf-log2n", "12"]);
  await run([...pw, "backup", "-r", p.url, "--image", file, "--name", "disk"]);
  const listed = JSON.parse(await run([...pw, "--json", "list", "-r", p.url]));
  const id = listed.backups[0].id;
  // A second passphrase, then the first one removed: only the second opens it.
  await run([...pw, "key", "add", "-r", p.url, "--label", "ops", "--kdf-log2n", "12"], {
    BLKSNAP_NEW_PASSWORD: "second",
  });
  const slots = JSON.parse(
    await run(["--json", "key", "list", "-r", p.url], { BLKSNAP_PASSWORD: "second" }),
  );
  assert.equal(slots.slots.length, 2);
  const first = slots.slots.find((s: { label: string }) => s.label === "initial").id;
  await run(["key", "remove", "-r", p.url, first], { BLKSNAP_PASSWORD: "second" });
  const refused = await cli([...pw, "list", "-r", p.url]);
  assert.equal(refused.code, 1);
  assert.match(refused.stderr, /KEY: Wrong passphrase/);
  // Copy to a plain local repository made with --no-encryption, restore from both.
  const local = join(dir.path, "local");
  await run(["init", "-r", local, "--no-encryption", "--chunk-size", "256K"]);
  await run(["copy", "--from", p.url, "--to", local, "--latest"], { BLKSNAP_PASSWORD: "second" });
  await run(["restore", "-r", local, id, join(dir.path, "l.img")]);
  await run(["restore", "-r", p.url, id, join(dir.path, "s.img")], { BLKSNAP_PASSWORD: "second" });
  for (const f of ["l.img", "s.img"]) {
    assert.equal(sha256Hex(await Deno.readFile(join(dir.path, f))), sha256Hex(img), f);
  }
  await run(["verify", "-r", p.url, "--deep"], { BLKSNAP_PASSWORD: "second" });
  await run(["gc", "-r", p.url, "--grace", "0"], { BLKSNAP_PASSWORD: "second" });
});

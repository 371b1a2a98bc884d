// Format 2 (encrypted) repositories in a directory: round trip, passphrases and key slots,
// no plaintext of the source in any file, and tampering found and named.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, RepoError, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import {
  MemSource,
  plaintextHits,
  pseudoRandom,
  sha256Hex,
  tempDir,
  textImage,
} from "./_helpers.ts";

const FAST = { N: 1 << 10, r: 8, p: 1 }; // scrypt cost for tests; the default is 2^17
const KiB = 1024;

async function filesUnder(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) out.push(...await filesUnder(p));
    else out.push(p);
  }
  return out;
}

Deno.test("encrypted repo: backup, restore, deep verify; no file holds plaintext", async () => {
  await using dir = await tempDir();
  // Text (zstd leaves literal runs of it) and random bytes (stored raw when plain).
  const img = new Uint8Array(512 * KiB);
  img.set(textImage(256 * KiB, 1));
  img.set(pseudoRandom(256 * KiB, 9), 256 * KiB);
  const path = join(dir.path, "enc");
  const repo = await Repository.init(path, { chunkSize: 64 * KiB, passphrase: "pw", scrypt: FAST });
  assert.equal(repo.config.version, 2);
  const { manifest } = await backup(new MemSource(img, { name: "/dev/secret-disk" }), repo);
  const again = await Repository.open(path, { passphrase: "pw" });
  await restore(again, manifest.id, join(dir.path, "out.img"));
  assert.equal(sha256Hex(await Deno.readFile(join(dir.path, "out.img"))), sha256Hex(img));
  assert.ok((await verify(again, { deep: true })).ok);
  let hits = 0;
  for (const f of await filesUnder(path)) hits += plaintextHits(await Deno.readFile(f), img);
  assert.equal(hits, 0);
  // The manifest names the device; sealed, the name is not readable either.
  for (const f of await filesUnder(join(path, "backups"))) {
    assert.ok(!new TextDecoder().decode(await Deno.readFile(f)).includes("secret-disk"), f);
  }
  // The same data in a plain repository does show (the check above has teeth).
  const plain = await Repository.init(join(dir.path, "plain"), { chunkSize: 64 * KiB });
  await backup(new MemSource(img), plain);
  let plainHits = 0;
  for (const f of await filesUnder(join(dir.path, "plain"))) {
    plainHits += plaintextHits(await Deno.readFile(f), img);
  }
  assert.ok(plainHits > 0);
});

Deno.test("encrypted repo: no passphrase, a wrong one: one clear error", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "enc");
  await Repository.init(path, { passphrase: "right", scrypt: FAST });
  const none = await Repository.open(path, { passphrase: undefined }).catch((e) => e);
  if (Deno.env.get("BLKSNAP_PASSWORD") === undefined) {
    assert.ok(none instanceof RepoError && none.code === "KEY", String(none));
    assert.match(none.message, /is encrypted: give its passphrase/);
  }
  const wrong = await Repository.open(path, { passphrase: "wrong" }).catch((e) => e);
  assert.ok(wrong instanceof RepoError && wrong.code === "KEY");
  assert.match(wrong.message, /^Wrong passphrase: none of the 1 key slot\(s\)/);
  assert.ok(await Repository.open(path, { passphrase: () => Promise.resolve("right") }));
});

Deno.test("encrypted repo: key slots add, open, remove; the last one stays", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "enc");
  const repo = await Repository.init(path, { passphrase: "one", scrypt: FAST });
  const [first] = await repo.keySlots();
  const second = await repo.addKey("two", { label: "ops team", scrypt: FAST });
  assert.equal((await repo.keySlots()).length, 2);
  assert.ok(await Repository.open(path, { passphrase: "two" }));
  await repo.removeKey(first.id);
  await assert.rejects(Repository.open(path, { passphrase: "one" }), /Wrong passphrase/);
  await assert.rejects(repo.removeKey(second.id), /last one/);
});

Deno.test("encrypted repo: altered chunk, swapped manifest, edited config are named", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "enc");
  const repo = await Repository.init(path, { chunkSize: 64 * KiB, passphrase: "pw", scrypt: FAST });
  const a = await backup(new MemSource(textImage(256 * KiB, 2), { name: "a" }), repo);
  const b = await backup(new MemSource(textImage(256 * KiB, 3), { name: "b" }), repo);
  // One byte of one chunk's ciphertext.
  const chunkFile = (await filesUnder(join(path, "chunks")))[0];
  const bytes = await Deno.readFile(chunkFile);
  bytes[100] ^= 1;
  await Deno.writeFile(chunkFile, bytes);
  const deep = await verify(repo, { deep: true });
  assert.equal(deep.badChunks.length, 1);
  assert.equal(deep.badChunks[0].path, chunkFile);
  assert.match(deep.badChunks[0].detail, /authentication failed/);
  // Manifest of a copied over the manifest of b: bound to its name, refused.
  await Deno.copyFile(repo.manifestPath(a.manifest.id), repo.manifestPath(b.manifest.id));
  await assert.rejects(repo.readManifest(b.manifest.id), /authentication failed/);
  // A config edited by hand (a bigger chunk size) is refused once the key is known.
  const config = JSON.parse(await Deno.readTextFile(join(path, "config.json")));
  config.chunkSize = 1 << 20;
  await Deno.writeTextFile(join(path, "config.json"), JSON.stringify(config));
  await assert.rejects(Repository.open(path, { passphrase: "pw" }), /MAC does not match/);
});

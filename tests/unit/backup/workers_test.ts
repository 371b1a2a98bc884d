// The worker-thread paths of backup, restore and verify (forced with
// `workers: 2` on small images): the same bytes and checks as on the calling
// thread, plain and encrypted; damage found before a byte is written; a
// scrub that finds media damage and only that; the threads stopped on every
// path, so a failed or aborted flow lets its process exit.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, RepoError, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { CHUNK_HEADER_SIZE, encodeChunkFile } from "../../../lib/backup/chunk.ts";
import { ChunkWorkers } from "../../../lib/backup/chunk_workers.ts";
import { isAllZero } from "../../../lib/backup/format.ts";
import { MemSource, mixedImage, pseudoRandom, sha256Hex, tempDir, textImage } from "./_helpers.ts";

const KiB = 1024;
const FAST = { N: 1 << 10, r: 8, p: 1 }; // scrypt cost for tests

/** A 40-chunk image of 16 KiB chunks: random, text, zero and repeated chunks. */
function image(): Uint8Array {
  const img = mixedImage(640 * KiB + 123, 7, 16 * KiB);
  img.set(textImage(64 * KiB, 3), 128 * KiB);
  return img;
}

/** The chunk files under `repo`, by digest. */
async function chunkFiles(repo: Repository): Promise<string[]> {
  const out: string[] = [];
  for await (const fan of Deno.readDir(repo.chunksDir)) {
    for await (const f of Deno.readDir(join(repo.chunksDir, fan.name))) {
      if (!f.name.startsWith(".")) out.push(join(repo.chunksDir, fan.name, f.name));
    }
  }
  return out.sort();
}

for (const encrypted of [false, true]) {
  const kind = encrypted ? "encrypted" : "plain";
  Deno.test(`${kind} repo: backup, restore and verify on threads equal the calling thread's`, async () => {
    await using dir = await tempDir();
    const img = image();
    const init = (name: string) =>
      Repository.init(join(dir.path, name), {
        chunkSize: 16 * KiB,
        ...(encrypted ? { passphrase: "pw", scrypt: FAST } : {}),
      });
    const threads = await init("threads");
    const inline = await init("inline");
    const a = await backup(new MemSource(img, { id: "d" }), threads, { workers: 2 });
    const b = await backup(new MemSource(img, { id: "d" }), inline, { workers: 0 });
    assert.deepEqual(a.manifest.stats, b.manifest.stats);
    assert.ok(a.manifest.stats.chunksZero > 0 && a.manifest.stats.chunksDeduplicated > 0);
    if (!encrypted) assert.equal(a.manifest.indexSha256, b.manifest.indexSha256);
    for (const workers of [0, 2]) {
      const out = join(dir.path, `out-${workers}.img`);
      const r = await restore(threads, a.manifest.id, out, { workers });
      assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img), `workers ${workers}`);
      assert.ok(r.chunksSkipped > 0);
      const deep = await verify(threads, { deep: true, workers, mark: false });
      assert.equal(deep.ok, true);
      assert.equal(deep.chunksChecked, a.manifest.stats.chunksNew);
      const scrub = await verify(threads, { scrub: true, workers });
      assert.equal(scrub.ok, true);
      assert.equal(scrub.scrub, true);
      assert.equal(scrub.chunksChecked, a.manifest.stats.chunksNew);
    }
  });
}

Deno.test("threads: a damaged chunk is found by deep verify and scrub, and restore writes nothing of it", async () => {
  await using dir = await tempDir();
  const img = image();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: 16 * KiB });
  const { manifest } = await backup(new MemSource(img, { id: "d" }), repo, { workers: 2 });
  const files = await chunkFiles(repo);
  const victim = files[Math.floor(files.length / 2)];
  const hex = victim.slice(victim.lastIndexOf("/") + 1);
  const bytes = await Deno.readFile(victim);
  bytes[bytes.length - 5] ^= 0x40; // media damage in the payload
  await Deno.writeFile(victim, bytes);

  for (const workers of [0, 2]) {
    const deep = await verify(repo, { deep: true, workers, mark: false });
    assert.deepEqual(deep.badChunks.map((c) => [c.digest, c.problem]), [[hex, "corrupt"]]);
    assert.match(deep.badChunks[0].detail, /CRC-32/);
    const scrub = await verify(repo, { scrub: true, workers });
    assert.deepEqual(scrub.badChunks.map((c) => c.digest), [hex]);
  }

  // An existing target: every chunk before the damaged one may be written,
  // the damaged chunk's bytes never are.
  const target = join(dir.path, "target.img");
  const before = new Uint8Array(img.length).fill(0xa5);
  await Deno.writeFile(target, before);
  await assert.rejects(
    restore(repo, manifest.id, target, { workers: 2, concurrency: 1 }),
    (e: unknown) => e instanceof RepoError && e.code === "BAD_CHUNK" && e.message.includes(hex),
  );
  const after = await Deno.readFile(target);
  const index = await repo.readIndex(manifest);
  for (let i = 0; i < index.chunkCount; i++) {
    const name = Array.from(index.digests.subarray(i * 32, i * 32 + 32))
      .map((b) => b.toString(16).padStart(2, "0")).join("");
    if (name !== hex) continue;
    const range = after.subarray(i * 16 * KiB, (i + 1) * 16 * KiB);
    assert.ok(range.every((b) => b === 0xa5), `chunk ${i} was written`);
  }
  // A new target is removed.
  const fresh = join(dir.path, "fresh.img");
  await assert.rejects(restore(repo, manifest.id, fresh, { workers: 2 }), RepoError);
  assert.equal(await Deno.stat(fresh).catch(() => null), null);
});

Deno.test("scrub passes a chunk whose frame and CRC are right but whose content is not; deep finds it", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: 16 * KiB });
  await backup(new MemSource(pseudoRandom(64 * KiB, 4), { id: "d" }), repo);
  const victim = (await chunkFiles(repo))[0];
  const hex = victim.slice(victim.lastIndexOf("/") + 1);
  // Raw payload of other bytes, framed with its own CRC: written wrong, not damaged later.
  const other = pseudoRandom(16 * KiB, 99);
  const crc = (await import("node:zlib")).default.crc32(other) >>> 0;
  await Deno.writeFile(
    victim,
    encodeChunkFile({
      encoding: 0,
      length: other.length,
      payloadLength: other.length,
      payloadCrc32: crc,
    }, other),
  );
  assert.equal((await verify(repo, { scrub: true })).ok, true);
  const deep = await verify(repo, { deep: true, workers: 2, mark: false });
  assert.deepEqual(deep.badChunks.map((c) => c.digest), [hex]);
  assert.match(deep.badChunks[0].detail, /SHA-256/);
  assert.equal((await Deno.readFile(victim)).length, CHUNK_HEADER_SIZE + other.length);
});

Deno.test("ChunkWorkers: buffers move and come back; close fails waiting calls", async () => {
  using workers = ChunkWorkers.start(2, { level: 1, keys: null });
  const data = textImage(256 * KiB, 5);
  const copy = data.slice();
  const named = await workers.identify(data);
  assert.equal(data.byteLength, 0, "moved to the thread");
  assert.deepEqual(named.data, copy);
  const enc = await workers.encode(named.data, named.name!, new Uint8Array(256 * KiB + 64));
  const stored = enc.out.subarray(0, enc.length), back = enc.data;
  assert.ok(stored.length < copy.length);
  assert.deepEqual(back, copy);
  const hex = Array.from(named.name!).map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.deepEqual(
    (await workers.decode(stored.slice(), hex, 256 * KiB, 256 * KiB, new Uint8Array(256 * KiB)))
      .data,
    copy,
  );
  await assert.rejects(
    workers.decode(stored.slice(), hex, 1024, undefined, new Uint8Array(1024)),
    /claims a length/,
  );
  assert.equal((await workers.identify(new Uint8Array(64 * KiB))).name, null);
  const waiting = workers.identify(pseudoRandom(4 << 20, 1));
  workers.close();
  await assert.rejects(waiting, /closed/);
  await assert.rejects(workers.identify(new Uint8Array(8)), /closed/);
});

Deno.test("ChunkWorkers.identifyEncode: names and encodes in one trip, as the two calls do", async () => {
  using workers = ChunkWorkers.start(2, { level: 1, keys: null });
  const data = textImage(256 * KiB, 6);
  const copy = data.slice();
  const both = await workers.identifyEncode(data, new Uint8Array(256 * KiB + 64));
  assert.equal(data.byteLength, 0, "moved to the thread");
  assert.deepEqual(both.data, copy);
  const named = await workers.identify(copy.slice());
  assert.deepEqual(both.name, named.name);
  const enc = await workers.encode(named.data, named.name!, new Uint8Array(256 * KiB + 64));
  assert.ok(both.length > 0 && both.length < copy.length);
  assert.deepEqual(both.out.subarray(0, both.length), enc.out.subarray(0, enc.length));
  // All zeros: no name, nothing encoded, both buffers back.
  const zero = await workers.identifyEncode(
    new Uint8Array(64 * KiB),
    new Uint8Array(64 * KiB + 64),
  );
  assert.equal(zero.name, null);
  assert.equal(zero.length, 0);
  assert.equal(zero.data.byteLength, 64 * KiB);
  assert.equal(zero.out.byteLength, 64 * KiB + 64);
});

Deno.test("a backup on threads through runs of new and of stored chunks stores what the calling thread does", async () => {
  // Chunks found stored stop the one-trip encoding (it would be wasted) and new ones
  // bring it back: both paths, and the switch between them, give the same repository.
  await using dir = await tempDir();
  const first = pseudoRandom(320 * KiB, 11); // 20 new chunks
  const second = new Uint8Array(640 * KiB); // the same 20 (stored), then 20 new
  second.set(first);
  second.set(pseudoRandom(320 * KiB, 12), 320 * KiB);
  const results = [];
  for (const workers of [2, 0]) {
    const repo = await Repository.init(join(dir.path, `r${workers}`), { chunkSize: 16 * KiB });
    await backup(new MemSource(first, { id: "a" }), repo, { workers });
    const r = await backup(new MemSource(second, { id: "b" }), repo, { workers });
    assert.equal(r.manifest.stats.chunksDeduplicated, 20);
    assert.equal(r.manifest.stats.chunksNew, 20);
    const files = (await chunkFiles(repo)).map((f) => f.slice(f.lastIndexOf("/") + 1));
    const bytes = await Promise.all((await chunkFiles(repo)).map((f) => Deno.readFile(f)));
    const out = join(dir.path, `o${workers}.img`);
    await restore(repo, r.manifest.id, out, { workers });
    assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(second));
    results.push({ stats: r.manifest.stats, files, bytes: bytes.map(sha256Hex) });
  }
  assert.deepEqual(results[0], results[1]);
});

Deno.test("isAllZero() finds a single non-zero byte anywhere, at any offset and length", () => {
  const buf = new Uint8Array(200 * KiB + 7);
  assert.equal(isAllZero(buf), true);
  assert.equal(isAllZero(buf.subarray(3, 3)), true);
  for (const at of [0, 1, 65535, 65536, 131071, buf.length - 1]) {
    buf[at] = 1;
    assert.equal(isAllZero(buf), false, `at ${at}`);
    assert.equal(isAllZero(buf.subarray(at > 0 ? at - 1 : 0)), false, `view to ${at}`);
    if (at > 0) assert.equal(isAllZero(buf.subarray(0, at)), true, `before ${at}`);
    buf[at] = 0;
  }
});

// Threads keep a process alive: a flow must stop them on every way out.
const script = (body: string): string => `
import { backup, Repository, restore } from "${
  new URL("../../../lib/backup/mod.ts", import.meta.url).href
}";
import { MemSource, pseudoRandom } from "${new URL("./_helpers.ts", import.meta.url).href}";
const dir = Deno.args[0];
const repo = await Repository.init(dir + "/r", { chunkSize: 16 * 1024 });
${body}
console.log("END");
`;

for (
  const [name, body] of [
    [
      "a backup failing on a read error",
      `await backup(new MemSource(pseudoRandom(1 << 20, 1), { failAt: 700000 }), repo, { workers: 2 })
        .then(() => { throw new Error("no failure"); }, () => {});`,
    ],
    [
      "an aborted backup",
      `const ac = new AbortController();
       await backup(new MemSource(pseudoRandom(4 << 20, 1)), repo, {
         workers: 2, concurrency: 1, signal: ac.signal,
         onProgress: (p) => { if (p.bytesDone > 64 * 1024) ac.abort(new Error("stop")); },
       }).then(() => { throw new Error("not aborted"); }, () => {});`,
    ],
    [
      "a restore of a missing backup chunk",
      `const b = await backup(new MemSource(pseudoRandom(1 << 20, 2)), repo, { workers: 2 });
       for await (const fan of Deno.readDir(dir + "/r/chunks")) {
         for await (const f of Deno.readDir(dir + "/r/chunks/" + fan.name)) {
           const p = dir + "/r/chunks/" + fan.name + "/" + f.name;
           const bytes = await Deno.readFile(p); bytes[bytes.length - 1] ^= 1; await Deno.writeFile(p, bytes);
         }
       }
       await restore(repo, b.manifest.id, dir + "/out.img", { workers: 2 })
         .then(() => { throw new Error("no failure"); }, () => {});`,
    ],
  ] as const
) {
  Deno.test(`the process exits after ${name} on threads`, async () => {
    await using dir = await tempDir();
    const file = join(dir.path, "flow.ts");
    await Deno.writeTextFile(file, script(body));
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "--quiet", file, dir.path],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const timer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    const out = await child.output();
    clearTimeout(timer);
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.equal(out.code, 0, text);
    assert.match(text, /END/);
  });
}

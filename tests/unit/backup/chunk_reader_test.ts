// Stored chunks read into reused buffers (chunk_reader.ts, DenoFs.readFileInto):
// every chunk's bytes are right whichever buffer they went through, on the
// calling thread and on threads, in a plain and an encrypted repository; a
// raw chunk's bytes (a view of the buffer its stored object was read into)
// stay intact while later chunks are read; a file that does not fit, or grew,
// is read whole into a buffer of its own.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, Repository } from "../../../lib/backup/mod.ts";
import { ChunkReader } from "../../../lib/backup/chunk_reader.ts";
import { DenoFs } from "../../../lib/backup/fs.ts";
import { chunkLengthOf, toHex, ZERO_DIGEST } from "../../../lib/backup/format.ts";
import { digestAt } from "../../../lib/backup/index_file.ts";
import { MemSource, mixedImage, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const KiB = 1024;
const FAST = { N: 1 << 10, r: 8, p: 1 }; // scrypt cost for tests

Deno.test("DenoFs.readFileInto: into the buffer when it fits, else a buffer of its own", async () => {
  await using dir = await tempDir();
  const fs = new DenoFs();
  const path = join(dir.path, "f");
  const bytes = pseudoRandom(10_000, 3);
  await Deno.writeFile(path, bytes);
  const into = new Uint8Array(16 * KiB).fill(0xee);
  const got = await fs.readFileInto(path, into);
  assert.equal(got.buffer, into.buffer);
  assert.deepEqual(got, bytes);
  const exact = new Uint8Array(10_000);
  assert.equal(await fs.readFileInto(path, exact), exact);
  assert.deepEqual(exact, bytes);
  const small = new Uint8Array(4 * KiB);
  const whole = await fs.readFileInto(path, small);
  assert.notEqual(whole.buffer, small.buffer);
  assert.deepEqual(whole, bytes);
  await Deno.writeFile(join(dir.path, "empty"), new Uint8Array(0));
  assert.equal((await fs.readFileInto(join(dir.path, "empty"), into)).length, 0);
});

for (const encrypted of [false, true]) {
  for (const workers of [0, 2]) {
    const kind = `${encrypted ? "encrypted" : "plain"} repo, ${workers} threads`;
    Deno.test(`ChunkReader (${kind}): every chunk right through reused buffers`, async () => {
      await using dir = await tempDir();
      const chunkSize = 16 * KiB;
      // Random chunks are stored raw (zstd cannot shrink them), the rest compressed.
      const img = mixedImage(48 * chunkSize + 100, 11, chunkSize);
      img.set(pseudoRandom(3 * chunkSize, 5), 4 * chunkSize);
      const repo = await Repository.init(join(dir.path, "r"), {
        chunkSize,
        ...(encrypted ? { passphrase: "pw", scrypt: FAST } : {}),
      });
      const { manifest } = await backup(new MemSource(img, { id: "d" }), repo, { workers: 0 });
      const index = await repo.readIndex(manifest);
      using reader = ChunkReader.start(repo, { workers });
      const kept: { i: number; data: Uint8Array }[] = [];
      const into = [new Uint8Array(chunkSize), new Uint8Array(chunkSize)];
      for (let round = 0; round < 2; round++) {
        // Several reads in flight at once, as a restore has them.
        const reads = [];
        for (let i = 0; i < index.chunkCount; i++) {
          const d = digestAt(index, i);
          if (toHex(d) === toHex(ZERO_DIGEST)) continue;
          const len = chunkLengthOf(i, manifest.device.capacity, chunkSize);
          // The first round without `into` (raw chunks come back as views of the
          // stored object's buffer), the second into a caller's buffer.
          const buf = round === 0 ? undefined : into[i % 2].slice();
          reads.push(reader.read(toHex(d), chunkSize, len, buf).then((r) => ({ i, data: r.data })));
          await reader.check(i % 2 ? "deep" : "scrub", toHex(d), chunkSize, len);
        }
        kept.push(...await Promise.all(reads));
      }
      // Checked only now, after every read: no later read wrote over an earlier one's bytes.
      assert.ok(kept.length > 40);
      for (const { i, data } of kept) {
        const want = img.subarray(i * chunkSize, Math.min(img.length, (i + 1) * chunkSize));
        assert.equal(sha256Hex(data), sha256Hex(want), `chunk ${i}`);
      }
    });
  }
}

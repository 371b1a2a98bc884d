// zstd into reused buffers (lib/backup/zstd_into.ts) and the chunk steps built
// on it, plain and encrypted: the same frames and checks as the allocating
// forms, "not shorter" and "too long" reported, and a context that failed
// still usable after.
import assert from "node:assert/strict";
import zlib from "node:zlib";
import {
  ChunkEncoding,
  decodeChunk,
  decodeChunkHeader,
  decodePayload,
  encodeChunkSync,
  encodeChunkSyncInto,
  maxChunkFileSize,
} from "../../../lib/backup/chunk.ts";
import { chunkCodec } from "../../../lib/backup/chunk_codec.ts";
import { deriveKeys, newMaster } from "../../../lib/backup/crypto/keys.ts";
import { sha256, toHex } from "../../../lib/backup/format.ts";
import { zstdCompressInto, zstdDecompressInto } from "../../../lib/backup/zstd_into.ts";
import { pseudoRandom, textImage } from "./_helpers.ts";

const KiB = 1024;

Deno.test("zstdCompressInto: a frame zstd reads back, at several levels, into a reused buffer", () => {
  const out = new Uint8Array(256 * KiB);
  for (const level of [1, 3, 1, 19]) {
    const data = textImage(256 * KiB, level);
    const n = zstdCompressInto(data, level, out);
    assert.ok(n > 0 && n < data.length / 4, `level ${level}: ${n} bytes`);
    assert.deepEqual(new Uint8Array(zlib.zstdDecompressSync(out.subarray(0, n))), data);
  }
});

Deno.test("zstdCompressInto: -1 when the frame would not be shorter than the room given", () => {
  const random = pseudoRandom(128 * KiB, 4);
  assert.equal(zstdCompressInto(random, 1, new Uint8Array(random.length)), -1);
  // The context is clean after a frame that did not fit: the next one is whole.
  const text = textImage(128 * KiB, 2);
  const out = new Uint8Array(text.length);
  const n = zstdCompressInto(text, 1, out);
  assert.deepEqual(new Uint8Array(zlib.zstdDecompressSync(out.subarray(0, n))), text);
});

Deno.test("zstdDecompressInto: exact fit, too long, corrupt, and usable after a failure", () => {
  const data = textImage(64 * KiB, 9);
  const frame = new Uint8Array(zlib.zstdCompressSync(data));
  const out = new Uint8Array(64 * KiB);
  assert.equal(zstdDecompressInto(frame, out), data.length);
  assert.deepEqual(out, data);
  assert.throws(() => zstdDecompressInto(frame, new Uint8Array(64 * KiB - 1)), /more than 65535/);
  const bad = frame.slice();
  bad[bad.length >> 1] ^= 0xff;
  assert.throws(() => zstdDecompressInto(bad, out));
  out.fill(0);
  assert.equal(zstdDecompressInto(frame, out), data.length);
  assert.deepEqual(out, data);
  // Room to spare: the length is what the frame holds.
  assert.equal(zstdDecompressInto(frame, new Uint8Array(100 * KiB)), data.length);
});

Deno.test("encodeChunkSyncInto: the chunk file encodeChunkSync makes, zstd or raw", () => {
  const out = new Uint8Array(maxChunkFileSize(128 * KiB));
  for (
    const [data, encoding] of [
      [textImage(128 * KiB, 5), ChunkEncoding.Zstd],
      [pseudoRandom(128 * KiB, 6), ChunkEncoding.Raw],
      [textImage(1000, 7), ChunkEncoding.Zstd],
    ] as const
  ) {
    const n = encodeChunkSyncInto(data, 1, out);
    const file = out.subarray(0, n);
    const header = decodeChunkHeader(file, 128 * KiB);
    assert.equal(header.encoding, encoding);
    assert.equal(header.encoding, decodeChunkHeader(encodeChunkSync(data, 1), 128 * KiB).encoding);
    const into = new Uint8Array(128 * KiB);
    const back = decodeChunk(file.slice(), toHex(sha256(data)), 128 * KiB, data.length, into);
    assert.deepEqual(back, data);
    if (encoding === ChunkEncoding.Zstd) assert.equal(back.buffer, into.buffer, "decoded in place");
  }
});

Deno.test("decodePayload: a frame longer than the header says fails, into a buffer or not", () => {
  const data = textImage(32 * KiB, 8);
  const frame = new Uint8Array(zlib.zstdCompressSync(data));
  for (const out of [undefined, new Uint8Array(64 * KiB)]) {
    assert.throws(
      () => decodePayload(ChunkEncoding.Zstd, frame, 32 * KiB - 1, undefined, out),
      /more than 32767/,
    );
    assert.deepEqual(decodePayload(ChunkEncoding.Zstd, frame, 32 * KiB, 32 * KiB, out), data);
  }
});

Deno.test("chunkCodec encodeInto: plain and encrypted objects decode, zstd or raw, into reused buffers", () => {
  const keys = deriveKeys(newMaster(), "0123456789abcdef0123456789abcdef");
  for (const spec of [{ level: 1, keys: null }, { level: 1, keys }]) {
    const codec = chunkCodec(spec);
    const out = new Uint8Array(codec.maxStoredSize(64 * KiB));
    for (const data of [textImage(64 * KiB, 1), pseudoRandom(64 * KiB, 2), textImage(777, 3)]) {
      const name = codec.name(data);
      const n = codec.encodeInto(data, name, out);
      assert.ok(n <= out.length);
      const stored = out.slice(0, n);
      assert.deepEqual(codec.decode(stored, toHex(name), 64 * KiB, data.length), data);
      codec.check(stored, toHex(name), 64 * KiB, data.length);
      // The allocating form makes an object of the same kind and size (the nonce differs).
      assert.equal(codec.encode(data, name).length, n);
      stored[stored.length - 1] ^= 1;
      assert.throws(() => codec.check(stored, toHex(name), 64 * KiB, data.length));
    }
  }
});

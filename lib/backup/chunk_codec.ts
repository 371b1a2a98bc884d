/**
 * How a chunk's bytes become the object stored under its name and back,
 * as synchronous steps with no I/O: the same functions run on the calling
 * thread and on the worker threads of `chunk_workers.ts`. The steps are
 *
 * - name: SHA-256 (format 1) or HMAC-SHA256 under the id key (format 2,
 *   encrypted);
 * - encode: zstd if smaller, else raw; then framed with a CRC-32 (format 1)
 *   or sealed with ChaCha20-Poly1305 (format 2);
 * - decode: every check a stored chunk must pass before its bytes are used
 *   (frame, CRC-32 or tag, decompressed length, the name against the bytes);
 * - scrub: only the checks that need no decompression (frame and CRC-32, or
 *   the tag), to find media damage at the speed of reading.
 *
 * A codec is built from a {@linkcode ChunkCodecSpec}, which a worker
 * receives by message: a new step (another cipher, another compressor)
 * is added here and runs everywhere.
 *
 * @example Encode and decode a chunk of a plain repository
 * ```ts
 * import { chunkCodec } from "./chunk_codec.ts";
 * import { toHex } from "./format.ts";
 * const codec = chunkCodec({ level: 1, keys: null });
 * const data = new Uint8Array(65536).fill(3);
 * const name = codec.name(data);
 * const stored = codec.encode(data, name);
 * console.log(codec.decode(stored, toHex(name), 65536).length); // 65536
 * ```
 *
 * @module
 */

import zlib from "node:zlib";
import {
  CHUNK_HEADER_SIZE,
  ChunkEncoding,
  decodeChunk,
  decodeChunkHeader,
  decodePayload,
  encodeChunkSync,
  encodeChunkSyncInto,
  maxChunkFileSize,
} from "./chunk.ts";
import { chunkId, type RepoKeys } from "./crypto/keys.ts";
import { maxSealedChunkSize, openChunk, sealChunkInto } from "./crypto/sealed.ts";
import { fromHex, sha256, toHex } from "./format.ts";
import { zstdCompressInto } from "./zstd_into.ts";

/** What a codec is made of; plain data, so it can be posted to a worker. */
export interface ChunkCodecSpec {
  /** zstd level of new chunks. */
  level: number;
  /** The keys of an encrypted (format 2) repository, `null` for a plain one. */
  keys: RepoKeys | null;
}

/** The synchronous steps between a chunk's bytes and its stored object. */
export interface ChunkCodec {
  /** The name (digest) of `data`: what the index records and the object is stored under. */
  name(data: Uint8Array): Uint8Array;
  /** The object to store for `data`, named `name`. */
  encode(data: Uint8Array, name: Uint8Array): Uint8Array;
  /**
   * {@linkcode ChunkCodec.encode} into the start of `out` (at least
   * {@linkcode ChunkCodec.maxStoredSize} of `data.length` bytes); returns
   * the object's length.
   */
  encodeInto(data: Uint8Array, name: Uint8Array, out: Uint8Array): number;
  /**
   * The chunk's bytes from stored object `stored` named `hex`, after every
   * check; at most `maxLength` bytes, exactly `exactLength` when given.
   * Decompressed bytes land in `out` when given (at least `maxLength`
   * bytes, reused by the caller), else in a new buffer; raw bytes are a view
   * of `stored`. Throws a plain `Error` saying what is wrong.
   */
  decode(
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength?: number,
    out?: Uint8Array,
  ): Uint8Array;
  /**
   * Every check of {@linkcode ChunkCodec.decode}, the bytes thrown away:
   * they are decompressed into a buffer this thread reuses.
   */
  check(stored: Uint8Array, hex: string, maxLength: number, exactLength?: number): void;
  /**
   * The checks of `stored` named `hex` that need no decompression: the
   * frame and CRC-32, or the tag. Throws a plain `Error` saying what is wrong.
   */
  scrub(stored: Uint8Array, hex: string, maxLength: number): void;
  /** The largest object a chunk of at most `maxLength` bytes is stored as. */
  maxStoredSize(maxLength: number): number;
}

// Where this thread's checks decompress to (and an encrypted chunk is compressed to before it is
// sealed), grown to the largest chunk seen and kept. Used only within one synchronous step.
let scratch = new Uint8Array(0);
function scratchOf(length: number): Uint8Array {
  if (scratch.length < length) scratch = new Uint8Array(length);
  return scratch;
}

/** The codec `spec` describes. */
export function chunkCodec(spec: ChunkCodecSpec): ChunkCodec {
  const keys = spec.keys;
  if (keys === null) {
    return {
      check: (stored, hex, maxLength, exactLength) => {
        decodeChunk(stored, hex, maxLength, exactLength, scratchOf(maxLength));
      },
      name: (data) => sha256(data),
      encode: (data) => encodeChunkSync(data, spec.level),
      encodeInto: (data, _name, out) => encodeChunkSyncInto(data, spec.level, out),
      decode: decodeChunk,
      scrub: (stored, _hex, maxLength) => {
        const header = decodeChunkHeader(stored, maxLength);
        if ((zlib.crc32(stored.subarray(CHUNK_HEADER_SIZE)) >>> 0) !== header.payloadCrc32) {
          throw new Error("payload CRC-32 mismatch");
        }
      },
      maxStoredSize: maxChunkFileSize,
    };
  }
  const encodeInto = (data: Uint8Array, name: Uint8Array, out: Uint8Array): number => {
    // zstd into this thread's scratch buffer (sealing cannot run in place), then sealed into `out`.
    const area = scratchOf(data.length).subarray(0, data.length);
    const n = zstdCompressInto(data, spec.level, area);
    return sealChunkInto(
      keys,
      name,
      {
        encoding: n < 0 ? ChunkEncoding.Raw : ChunkEncoding.Zstd,
        length: data.length,
        payloadLength: n < 0 ? data.length : n,
      },
      n < 0 ? data : area.subarray(0, n),
      out,
    );
  };
  const decode = (
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength?: number,
    out?: Uint8Array,
  ): Uint8Array => {
    const { header, payload } = openChunk(keys, fromHex(hex), stored, maxLength);
    const data = decodePayload(header.encoding, payload, header.length, exactLength, out);
    if (toHex(chunkId(keys, data)) !== hex) {
      throw new Error("content does not match its keyed id");
    }
    return data;
  };
  return {
    name: (data) => chunkId(keys, data),
    encode: (data, name) => {
      const out = new Uint8Array(maxSealedChunkSize(data.length));
      return out.subarray(0, encodeInto(data, name, out));
    },
    encodeInto,
    decode,
    check: (stored, hex, maxLength, exactLength) => {
      decode(stored, hex, maxLength, exactLength, scratchOf(maxLength));
    },
    scrub: (stored, hex, maxLength) => {
      openChunk(keys, fromHex(hex), stored, maxLength);
    },
    maxStoredSize: maxSealedChunkSize,
  };
}

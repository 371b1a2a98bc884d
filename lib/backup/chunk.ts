/**
 * Chunk files: the 24-byte header (magic, encoding, length, payload length,
 * payload CRC-32), encoding (zstd when smaller, else raw), and decoding with
 * every check a stored chunk must pass (header, file length, CRC-32,
 * decompressed length, SHA-256 against the chunk's name). Hashing and zstd
 * run on Deno's thread pool in the async forms. Format:
 * docs/repository-format.md "Chunk files".
 *
 * @module
 */

import zlib from "node:zlib";
import { bytesEqual, fromHex, sha256 } from "./format.ts";
import { zstdCompressInto, zstdDecompressInto } from "./zstd_into.ts";

/** Chunk file magic: `BSNPCHNK`. */
export const CHUNK_MAGIC: Uint8Array = new TextEncoder().encode("BSNPCHNK");
/** Size of the chunk file header in bytes. */
export const CHUNK_HEADER_SIZE = 24;
/** Byte offsets of the chunk file header's fields (all little-endian u32 after the magic). */
export const CHUNK_HEADER = {
  /** `BSNPCHNK`, 8 bytes. */
  magic: 0,
  /** One of {@linkcode ChunkEncoding}. */
  encoding: 8,
  /** Length of the chunk's data. */
  length: 12,
  /** Length of the payload that follows the header. */
  payloadLength: 16,
  /** CRC-32 of the payload. */
  payloadCrc32: 20,
} as const;

/** Payload encodings of a chunk file. */
export const ChunkEncoding = {
  /** The payload is the chunk's bytes as they are. */
  Raw: 0,
  /** The payload is one zstd frame. */
  Zstd: 1,
} as const;
/** One of {@linkcode ChunkEncoding}. */
export type ChunkEncoding = typeof ChunkEncoding[keyof typeof ChunkEncoding];

/** The header of a chunk file. */
export interface ChunkHeader {
  /** Payload encoding. */
  encoding: ChunkEncoding;
  /** Length of the chunk's data in bytes. */
  length: number;
  /** Length of the payload in bytes. */
  payloadLength: number;
  /** CRC-32 of the payload. */
  payloadCrc32: number;
}

/** Largest valid chunk file for chunks of at most `chunkSize` bytes. */
export function maxChunkFileSize(chunkSize: number): number {
  return CHUNK_HEADER_SIZE + chunkSize;
}

/** Build a chunk file: header, then `payload`. */
export function encodeChunkFile(header: ChunkHeader, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHUNK_HEADER_SIZE + payload.length);
  encodeChunkFileInto(header, payload, out);
  return out;
}

/**
 * {@linkcode encodeChunkFile} into the start of `out` (at least
 * `CHUNK_HEADER_SIZE + payload.length` bytes); returns the file's length.
 */
export function encodeChunkFileInto(
  header: ChunkHeader,
  payload: Uint8Array,
  out: Uint8Array,
): number {
  const v = new DataView(out.buffer, out.byteOffset, out.byteLength);
  out.set(CHUNK_MAGIC, CHUNK_HEADER.magic);
  v.setUint32(CHUNK_HEADER.encoding, header.encoding, true);
  v.setUint32(CHUNK_HEADER.length, header.length, true);
  v.setUint32(CHUNK_HEADER.payloadLength, payload.length, true);
  v.setUint32(CHUNK_HEADER.payloadCrc32, header.payloadCrc32, true);
  // The payload may already be in place (compressed straight into `out`).
  if (payload.buffer !== out.buffer || payload.byteOffset !== out.byteOffset + CHUNK_HEADER_SIZE) {
    out.set(payload, CHUNK_HEADER_SIZE);
  }
  return CHUNK_HEADER_SIZE + payload.length;
}

/**
 * Parse a chunk file's header and check the file length against it; the
 * caller checks the CRC and the digest. Throws a plain `Error` with the reason.
 */
export function decodeChunkHeader(bytes: Uint8Array, maxLength: number): ChunkHeader {
  if (bytes.length < CHUNK_HEADER_SIZE) throw new Error(`is ${bytes.length} bytes, no header`);
  if (!bytesEqual(bytes.subarray(0, 8), CHUNK_MAGIC)) throw new Error("has a bad magic");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const encoding = v.getUint32(CHUNK_HEADER.encoding, true);
  if (encoding !== ChunkEncoding.Raw && encoding !== ChunkEncoding.Zstd) {
    throw new Error(`has unknown encoding ${encoding}`);
  }
  const length = v.getUint32(CHUNK_HEADER.length, true);
  if (length === 0 || length > maxLength) throw new Error(`claims a length of ${length}`);
  const payloadLength = v.getUint32(CHUNK_HEADER.payloadLength, true);
  if (bytes.length !== CHUNK_HEADER_SIZE + payloadLength) {
    throw new Error(`is ${bytes.length} bytes, header says ${CHUNK_HEADER_SIZE + payloadLength}`);
  }
  if (encoding === ChunkEncoding.Raw && payloadLength !== length) {
    throw new Error("raw payload length differs from its length");
  }
  return {
    encoding,
    length,
    payloadLength,
    payloadCrc32: v.getUint32(CHUNK_HEADER.payloadCrc32, true),
  };
}

/**
 * The chunk's data from chunk file `file` named `hex`: header, CRC-32,
 * decompression bounded by `maxLength`, the length (`exactLength` when
 * given) and the SHA-256 against the name. Throws a plain `Error` whose
 * message says what is wrong ("payload CRC-32 mismatch", ...).
 */
export function decodeChunk(
  file: Uint8Array,
  hex: string,
  maxLength: number,
  exactLength?: number,
  out?: Uint8Array,
): Uint8Array {
  const header = decodeChunkHeader(file, maxLength);
  const payload = file.subarray(CHUNK_HEADER_SIZE);
  if ((zlib.crc32(payload) >>> 0) !== header.payloadCrc32) {
    throw new Error("payload CRC-32 mismatch");
  }
  const data = decodePayload(header.encoding, payload, header.length, exactLength, out);
  if (!bytesEqual(sha256(data), fromHex(hex))) {
    throw new Error("content does not match its SHA-256 name");
  }
  return data;
}

/**
 * The chunk's data from its stored payload (format 1 and 2 alike): as is (a
 * view of `payload`), or one zstd frame decompressed to at most `length`
 * bytes, into `out` when given (at least `length` bytes, reused by the
 * caller) else into a new buffer; then the length against the header's and,
 * when given, against `exactLength`.
 */
export function decodePayload(
  encoding: number,
  payload: Uint8Array,
  length: number,
  exactLength?: number,
  out?: Uint8Array,
): Uint8Array {
  let data = payload;
  if (encoding !== ChunkEncoding.Raw) {
    const into = out ?? new Uint8Array(length);
    data = into.subarray(0, zstdDecompressInto(payload, into.subarray(0, length)));
  }
  if (data.length !== length) {
    throw new Error(`decompresses to ${data.length} bytes, header says ${length}`);
  }
  if (exactLength !== undefined && data.length !== exactLength) {
    throw new Error(`is ${data.length} bytes, expected ${exactLength}`);
  }
  return data;
}

/** The header and payload of the chunk file of `data` given its zstd form: zstd if smaller, raw otherwise. */
function chunkFileParts(
  data: Uint8Array,
  zstd: Uint8Array,
): { header: ChunkHeader; payload: Uint8Array } {
  const useZstd = zstd.length < data.length;
  const payload = useZstd ? zstd : data;
  return {
    header: {
      encoding: useZstd ? ChunkEncoding.Zstd : ChunkEncoding.Raw,
      length: data.length,
      payloadLength: payload.length,
      payloadCrc32: zlib.crc32(payload) >>> 0,
    },
    payload,
  };
}

/** The chunk file of `data` given its zstd form. */
function chunkFileOf(data: Uint8Array, zstd: Uint8Array): Uint8Array {
  const { header, payload } = chunkFileParts(data, zstd);
  return encodeChunkFile(header, payload);
}

/**
 * Encode chunk bytes as a chunk file: zstd if it is smaller, raw otherwise.
 *
 * @example
 * ```ts
 * import { decodeChunk, encodeChunk } from "./chunk.ts";
 * import { sha256, toHex } from "./format.ts";
 * const data = new Uint8Array(4096).fill(7);
 * const file = await encodeChunk(data, 1);
 * console.log(decodeChunk(file, toHex(sha256(data)), 4096).length); // 4096
 * ```
 */
export async function encodeChunk(data: Uint8Array, level: number): Promise<Uint8Array> {
  return chunkFileOf(data, await zstdCompress(data, level));
}

/** Synchronous {@linkcode encodeChunk}: zstd on the calling thread. */
export function encodeChunkSync(data: Uint8Array, level: number): Uint8Array {
  return chunkFileOf(data, zstdCompressSync(data, level));
}

/**
 * {@linkcode encodeChunkSync} into the start of `out` (at least
 * `maxChunkFileSize(data.length)` bytes); returns the file's length. A
 * buffer reused from chunk to chunk spares the allocation, zeroing and page
 * faults of a fresh one per chunk.
 */
export function encodeChunkSyncInto(data: Uint8Array, level: number, out: Uint8Array): number {
  // zstd straight into its place in `out` when shorter than the data, else the data itself.
  const area = out.subarray(CHUNK_HEADER_SIZE, CHUNK_HEADER_SIZE + data.length);
  const n = zstdCompressInto(data, level, area);
  // -1: zstd is not shorter, and `data` itself (not shorter than itself) makes the file raw.
  const { header, payload } = chunkFileParts(data, n < 0 ? data : area.subarray(0, n));
  return encodeChunkFileInto(header, payload, out);
}

/**
 * zstd-compress `data` at `level` on the calling thread, in output pieces of
 * 256 KiB: the default 16 KiB pieces cost a concatenation of many, and
 * pieces as large as the input cost zeroing memory the output never fills
 * (measured: 1.8-2.5 ms per 4 MiB chunk either way, 1.0-1.4 ms like this).
 */
export function zstdCompressSync(data: Uint8Array, level: number): Uint8Array {
  const z = zlib.zstdCompressSync(data, {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
    chunkSize: 256 * 1024,
  });
  return new Uint8Array(z.buffer, z.byteOffset, z.length);
}

/** SHA-256 of `data` on Deno's thread pool. */
export async function digestOf(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/** zstd-compress `data` at `level` on the libuv-style thread pool. */
export function zstdCompress(data: Uint8Array, level: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlib.zstdCompress(
      data,
      { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } },
      (err, out) =>
        err ? reject(err) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length)),
    );
  });
}

/** Decompress a zstd frame, failing if the output would exceed `maxLength`. */
export function zstdDecompress(data: Uint8Array, maxLength: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlib.zstdDecompress(
      data,
      { maxOutputLength: Math.max(1, maxLength) },
      (err, out) =>
        err ? reject(err) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length)),
    );
  });
}

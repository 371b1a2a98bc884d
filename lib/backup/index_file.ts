/**
 * The binary backup index, `backups/<id>.index`: a 64-byte header (magic,
 * version, chunk size, capacity, chunk count, SHA-256 over header and
 * digests) followed by one SHA-256 digest per chunk, all-zero for a zero
 * chunk. Format: docs/repository-format.md "Index files".
 *
 * @module
 */

import { CorruptError, RepoError } from "./errors.ts";
import {
  bytesEqual,
  chunkCountBig,
  chunkCountOf,
  DIGEST_SIZE,
  FORMAT_VERSION,
  isValidChunkSize,
  MAX_CAPACITY,
  sha256,
  toHex,
  ZERO_DIGEST,
} from "./format.ts";

/** Index magic: `BSNAPIDX`. */
export const INDEX_MAGIC: Uint8Array = new TextEncoder().encode("BSNAPIDX");
/** Size of the index header in bytes. */
export const INDEX_HEADER_SIZE = 64;
/** Byte offsets of the index header's fields (little-endian). */
export const INDEX_HEADER = {
  /** `BSNAPIDX`, 8 bytes. */
  magic: 0,
  /** u32 format version. */
  version: 8,
  /** u32 chunk size. */
  chunkSize: 12,
  /** u64 capacity in bytes. */
  capacity: 16,
  /** u64 chunk count. */
  chunkCount: 24,
  /** SHA-256 of header bytes 0..31 and the digests, 32 bytes. */
  checksum: 32,
} as const;

/** A decoded backup index. */
export interface BackupIndex {
  /** Format version of the index. */
  version: number;
  /** Chunk size in bytes. */
  chunkSize: number;
  /** Device capacity in bytes. */
  capacity: bigint;
  /** Number of chunks: ceil(capacity / chunkSize). */
  chunkCount: number;
  /** `chunkCount` digests of {@linkcode DIGEST_SIZE} bytes, back to back. */
  digests: Uint8Array;
}

/** Size in bytes of the index file of a backup of `chunkCount` chunks. */
export function indexFileSize(chunkCount: number): number {
  return INDEX_HEADER_SIZE + chunkCount * DIGEST_SIZE;
}

/** The digest of chunk `i` of `index` (a view, not a copy). */
export function digestAt(index: Pick<BackupIndex, "digests">, i: number): Uint8Array {
  return index.digests.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE);
}

/**
 * Each chunk `index` stores (zero chunks left out), in chunk order, first
 * occurrence only: its hex digest and the chunk number it first appears at.
 *
 * @example
 * ```ts
 * import { encodeIndex, decodeIndex, referencedDigests } from "./index_file.ts";
 * const digests = new Uint8Array(64);
 * digests[32] = 1; // chunk 0 is zero, chunk 1 is not
 * const index = decodeIndex(encodeIndex(4096, 8192n, digests), "x.index");
 * console.log([...referencedDigests(index)].map(([, i]) => i)); // [1]
 * ```
 */
export function referencedDigests(index: BackupIndex): Map<string, number> {
  const out = new Map<string, number>();
  for (let i = 0; i < index.chunkCount; i++) {
    const d = digestAt(index, i);
    if (bytesEqual(d, ZERO_DIGEST)) continue;
    const hex = toHex(d);
    if (!out.has(hex)) out.set(hex, i);
  }
  return out;
}

/** Encode an index; `digests` holds `chunkCount` digests back to back. */
export function encodeIndex(chunkSize: number, capacity: bigint, digests: Uint8Array): Uint8Array {
  const count = chunkCountOf(capacity, chunkSize);
  if (digests.length !== count * DIGEST_SIZE) {
    throw new RepoError(
      "INVALID",
      `Index needs ${count} digests, got ${digests.length / DIGEST_SIZE}`,
    );
  }
  const out = new Uint8Array(INDEX_HEADER_SIZE + digests.length);
  const view = new DataView(out.buffer);
  out.set(INDEX_MAGIC, INDEX_HEADER.magic);
  view.setUint32(INDEX_HEADER.version, FORMAT_VERSION, true);
  view.setUint32(INDEX_HEADER.chunkSize, chunkSize, true);
  view.setBigUint64(INDEX_HEADER.capacity, capacity, true);
  view.setBigUint64(INDEX_HEADER.chunkCount, BigInt(count), true);
  out.set(digests, INDEX_HEADER_SIZE);
  out.set(sha256(out.subarray(0, INDEX_HEADER.checksum), digests), INDEX_HEADER.checksum);
  return out;
}

/**
 * Decode and check an index read from `path`: size, magic, version, chunk
 * size, count against capacity and file length, and the header checksum.
 * Throws {@linkcode CorruptError}; allocates nothing beyond `bytes`.
 */
export function decodeIndex(bytes: Uint8Array, path: string): BackupIndex {
  if (bytes.length < INDEX_HEADER_SIZE) {
    throw new CorruptError(path, `index is ${bytes.length} bytes, shorter than its header`);
  }
  if (!bytesEqual(bytes.subarray(0, 8), INDEX_MAGIC)) throw new CorruptError(path, "bad magic");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(INDEX_HEADER.version, true);
  if (version !== FORMAT_VERSION) {
    throw new CorruptError(path, `unsupported index version ${version}`);
  }
  const chunkSize = view.getUint32(INDEX_HEADER.chunkSize, true);
  if (!isValidChunkSize(chunkSize)) throw new CorruptError(path, `bad chunk size ${chunkSize}`);
  const capacity = view.getBigUint64(INDEX_HEADER.capacity, true);
  if (capacity > MAX_CAPACITY) throw new CorruptError(path, `capacity ${capacity} out of range`);
  const count = view.getBigUint64(INDEX_HEADER.chunkCount, true);
  if (count !== chunkCountBig(capacity, chunkSize)) {
    throw new CorruptError(path, `chunk count ${count} does not match capacity ${capacity}`);
  }
  if (BigInt(bytes.length) !== BigInt(INDEX_HEADER_SIZE) + count * BigInt(DIGEST_SIZE)) {
    throw new CorruptError(path, `index is ${bytes.length} bytes, header says ${count} chunks`);
  }
  const digests = bytes.subarray(INDEX_HEADER_SIZE);
  const checksum = bytes.subarray(INDEX_HEADER.checksum, INDEX_HEADER_SIZE);
  if (!bytesEqual(sha256(bytes.subarray(0, INDEX_HEADER.checksum), digests), checksum)) {
    throw new CorruptError(path, "index checksum mismatch");
  }
  return { version, chunkSize, capacity, chunkCount: Number(count), digests };
}

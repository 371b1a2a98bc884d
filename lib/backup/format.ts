/**
 * On-disk formats of the backup repository (version 1): the config, chunk files, the
 * binary backup index and the JSON manifest, with strict parsers that throw
 * {@linkcode CorruptError} naming the file. See docs/repository-format.md.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { CorruptError, RepoError } from "./errors.ts";

/** Repository format version written by this code. */
export const FORMAT_VERSION = 1;
/** Size of one digest in bytes (SHA-256). */
export const DIGEST_SIZE = 32;
/** The digest that stands for an all-zero chunk (stored as nothing). */
export const ZERO_DIGEST: Uint8Array = new Uint8Array(DIGEST_SIZE);
/** Default chunk size: 4 MiB. */
export const DEFAULT_CHUNK_SIZE = 4 * 1024 * 1024;
/** Smallest chunk size accepted. */
export const MIN_CHUNK_SIZE = 4096;
/** Largest chunk size accepted. */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;
/** Largest config or manifest file read (bytes). */
export const MAX_JSON_SIZE = 1024 * 1024;
/** Index magic: `BSNAPIDX`. */
export const INDEX_MAGIC: Uint8Array = new TextEncoder().encode("BSNAPIDX");
/** Size of the index header in bytes. */
export const INDEX_HEADER_SIZE = 64;
/** Largest capacity an index may describe: 2^63 - 1 bytes. */
export const MAX_CAPACITY: bigint = (1n << 63n) - 1n;
/** Largest chunk count an index may hold (2^31; 64 GiB of digests). */
export const MAX_CHUNK_COUNT = 2 ** 31;

const ID_RE = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

/** True if `n` is a power of two between {@linkcode MIN_CHUNK_SIZE} and {@linkcode MAX_CHUNK_SIZE}. */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** Number of chunks of `chunkSize` covering `capacity` bytes. */
export function chunkCountOf(capacity: bigint, chunkSize: number): number {
  const n = (capacity + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
  if (n > BigInt(MAX_CHUNK_COUNT)) {
    throw new RepoError("INVALID", `Capacity ${capacity} needs more than 2^31 chunks`);
  }
  return Number(n);
}

/** Length in bytes of chunk `i` of a device of `capacity` bytes. */
export function chunkLengthOf(i: number, capacity: bigint, chunkSize: number): number {
  const start = BigInt(i) * BigInt(chunkSize);
  const rest = capacity - start;
  return rest < BigInt(chunkSize) ? Number(rest) : chunkSize;
}

/** Lower-case hex of `bytes`. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** Bytes of a lower-case hex string of even length (no validation beyond that). */
export function fromHex(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return out;
}

/** True if `s` is 64 lower-case hex digits. */
export function isDigestHex(s: string): boolean {
  return HEX64_RE.test(s);
}

/** SHA-256 of `data` (synchronous). */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

/** True if `a` and `b` hold the same bytes. */
export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** True if every byte of `buf` is zero. */
export function isAllZero(buf: Uint8Array): boolean {
  let i = 0;
  if (buf.byteOffset % 8 === 0) {
    const words = new BigUint64Array(buf.buffer, buf.byteOffset, buf.length >> 3);
    for (const w of words) if (w !== 0n) return false;
    i = words.length << 3;
  }
  for (; i < buf.length; i++) if (buf[i] !== 0) return false;
  return true;
}

/** True if `s` is a backup id as made by {@linkcode newBackupId}. */
export function isBackupId(s: string): boolean {
  return ID_RE.test(s);
}

/** A new backup id: UTC time to the millisecond plus 8 random hex digits (sorts by time). */
export function newBackupId(now: Date = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace(".", ""); // 20261124T031600123Z
  const r = new Uint8Array(4);
  crypto.getRandomValues(r);
  return `${t}-${toHex(r)}`;
}

// ---------------------------------------------------------------- chunk files

/** Chunk file magic: `BSNPCHNK`. */
export const CHUNK_MAGIC: Uint8Array = new TextEncoder().encode("BSNPCHNK");
/** Size of the chunk file header in bytes. */
export const CHUNK_HEADER_SIZE = 24;
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

/** Build a chunk file: header, then `payload`. */
export function encodeChunkFile(header: ChunkHeader, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(CHUNK_HEADER_SIZE + payload.length);
  const v = new DataView(out.buffer);
  out.set(CHUNK_MAGIC, 0);
  v.setUint32(8, header.encoding, true);
  v.setUint32(12, header.length, true);
  v.setUint32(16, payload.length, true);
  v.setUint32(20, header.payloadCrc32, true);
  out.set(payload, CHUNK_HEADER_SIZE);
  return out;
}

/**
 * Parse a chunk file's header and check the file length against it; the
 * caller checks the CRC and the digest. Throws a plain `Error` with the reason.
 */
export function decodeChunkHeader(bytes: Uint8Array, maxLength: number): ChunkHeader {
  if (bytes.length < CHUNK_HEADER_SIZE) throw new Error(`is ${bytes.length} bytes, no header`);
  if (!bytesEqual(bytes.subarray(0, 8), CHUNK_MAGIC)) throw new Error("has a bad magic");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const encoding = v.getUint32(8, true);
  if (encoding !== ChunkEncoding.Raw && encoding !== ChunkEncoding.Zstd) {
    throw new Error(`has unknown encoding ${encoding}`);
  }
  const length = v.getUint32(12, true);
  if (length === 0 || length > maxLength) throw new Error(`claims a length of ${length}`);
  const payloadLength = v.getUint32(16, true);
  if (bytes.length !== CHUNK_HEADER_SIZE + payloadLength) {
    throw new Error(`is ${bytes.length} bytes, header says ${CHUNK_HEADER_SIZE + payloadLength}`);
  }
  if (encoding === ChunkEncoding.Raw && payloadLength !== length) {
    throw new Error("raw payload length differs from its length");
  }
  return { encoding, length, payloadLength, payloadCrc32: v.getUint32(20, true) };
}

// ---------------------------------------------------------------- index

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

/** Encode an index; `digests` holds `chunkCount` digests back to back. */
export function encodeIndex(chunkSize: number, capacity: bigint, digests: Uint8Array): Uint8Array {
  const count = chunkCountOf(capacity, chunkSize);
  if (digests.length !== count * DIGEST_SIZE) {
    throw new RepoError("INVALID", `Index needs ${count} digests, got ${digests.length / 32}`);
  }
  const out = new Uint8Array(INDEX_HEADER_SIZE + digests.length);
  const view = new DataView(out.buffer);
  out.set(INDEX_MAGIC, 0);
  view.setUint32(8, FORMAT_VERSION, true);
  view.setUint32(12, chunkSize, true);
  view.setBigUint64(16, capacity, true);
  view.setBigUint64(24, BigInt(count), true);
  out.set(digests, INDEX_HEADER_SIZE);
  out.set(sha256(out.subarray(0, 32), digests), 32);
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
  const version = view.getUint32(8, true);
  if (version !== FORMAT_VERSION) {
    throw new CorruptError(path, `unsupported index version ${version}`);
  }
  const chunkSize = view.getUint32(12, true);
  if (!isValidChunkSize(chunkSize)) throw new CorruptError(path, `bad chunk size ${chunkSize}`);
  const capacity = view.getBigUint64(16, true);
  if (capacity > MAX_CAPACITY) throw new CorruptError(path, `capacity ${capacity} out of range`);
  const count = view.getBigUint64(24, true);
  const expected = (capacity + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
  if (count !== expected) {
    throw new CorruptError(path, `chunk count ${count} does not match capacity ${capacity}`);
  }
  if (BigInt(bytes.length) !== BigInt(INDEX_HEADER_SIZE) + count * BigInt(DIGEST_SIZE)) {
    throw new CorruptError(path, `index is ${bytes.length} bytes, header says ${count} chunks`);
  }
  const digests = bytes.subarray(INDEX_HEADER_SIZE);
  if (!bytesEqual(sha256(bytes.subarray(0, 32), digests), bytes.subarray(32, 64))) {
    throw new CorruptError(path, "index checksum mismatch");
  }
  return { version, chunkSize, capacity, chunkCount: Number(count), digests };
}

// ---------------------------------------------------------------- JSON helpers

type Json = Record<string, unknown>;

function parseJsonObject(bytes: Uint8Array, path: string): Json {
  if (bytes.length > MAX_JSON_SIZE) throw new CorruptError(path, "file too large");
  let value: unknown;
  try {
    value = JSON.parse(new TextDecoder("utf-8", { fatal: true }).decode(bytes));
  } catch (e) {
    throw new CorruptError(path, `not valid JSON: ${e instanceof Error ? e.message : e}`, e);
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new CorruptError(path, "not a JSON object");
  }
  return value as Json;
}

class Reader {
  constructor(readonly path: string) {}
  fail(field: string, want: string): never {
    throw new CorruptError(this.path, `field ${field} must be ${want}`);
  }
  obj(o: Json, k: string, field = k): Json {
    const v = o[k];
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(field, "an object");
    return v as Json;
  }
  str(o: Json, k: string, field = k): string {
    const v = o[k];
    if (typeof v !== "string" || v.length > 4096) this.fail(field, "a string");
    return v;
  }
  strOrNull(o: Json, k: string, field = k): string | null {
    return o[k] === null ? null : this.str(o, k, field);
  }
  uint(o: Json, k: string, field = k): number {
    const v = o[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.fail(field, "a non-negative integer");
    }
    return v;
  }
  bool(o: Json, k: string, field = k): boolean {
    const v = o[k];
    if (typeof v !== "boolean") this.fail(field, "a boolean");
    return v;
  }
  bigint(o: Json, k: string, field = k): bigint {
    const v = o[k];
    if (typeof v !== "string" || !/^(0|[1-9]\d{0,18})$/.test(v) || BigInt(v) > MAX_CAPACITY) {
      this.fail(field, "a decimal string of a 63-bit integer");
    }
    return BigInt(v);
  }
  time(o: Json, k: string, field = k): string {
    const v = this.str(o, k, field);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) || isNaN(Date.parse(v))) {
      this.fail(field, "an ISO 8601 UTC time");
    }
    return v;
  }
  oneOf<T extends string>(o: Json, k: string, values: readonly T[], field = k): T {
    const v = o[k];
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      this.fail(field, `one of ${values.join(", ")}`);
    }
    return v as T;
  }
}

// ---------------------------------------------------------------- config

/** The repository config (`config.json`). */
export interface RepoConfig {
  /** Always `"blksnap-repository"`. */
  format: "blksnap-repository";
  /** Format version; see {@linkcode FORMAT_VERSION}. */
  version: number;
  /** Random repository id (32 hex digits). */
  id: string;
  /** Chunk size in bytes; a power of two. */
  chunkSize: number;
  /** Compression of stored chunks. */
  compression: { algorithm: "zstd"; level: number };
  /** Creation time (ISO 8601 UTC). */
  created: string;
}

/** Encode a config as JSON bytes. */
export function encodeConfig(config: RepoConfig): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(config, null, 2) + "\n");
}

/** Parse and check `config.json` read from `path`. */
export function parseConfig(bytes: Uint8Array, path: string): RepoConfig {
  const o = parseJsonObject(bytes, path);
  const r = new Reader(path);
  if (o.format !== "blksnap-repository") r.fail("format", '"blksnap-repository"');
  const version = r.uint(o, "version");
  if (version !== FORMAT_VERSION) {
    throw new CorruptError(path, `unsupported repository version ${version}`);
  }
  const id = r.str(o, "id");
  if (!/^[0-9a-f]{32}$/.test(id)) r.fail("id", "32 hex digits");
  const chunkSize = r.uint(o, "chunkSize");
  if (!isValidChunkSize(chunkSize)) r.fail("chunkSize", "a power of two from 4 KiB to 64 MiB");
  const c = r.obj(o, "compression");
  if (c.algorithm !== "zstd") r.fail("compression.algorithm", '"zstd"');
  const level = r.uint(c, "level", "compression.level");
  if (level < 1 || level > 19) r.fail("compression.level", "1..19");
  return {
    format: "blksnap-repository",
    version,
    id,
    chunkSize,
    compression: { algorithm: "zstd", level },
    created: r.time(o, "created"),
  };
}

// ---------------------------------------------------------------- manifest

/** The CBT position a backup was taken at. */
export interface CbtCursor {
  /** The tracker's generation UUID. */
  generationId: string;
  /** The tracker's changes number at the snapshot. */
  changesNumber: number;
  /** CBT block size in bytes. */
  blockSize: number;
}

/** The device a backup is of. */
export interface DeviceIdentity {
  /** A human name, e.g. `/dev/vdb` or an image path. */
  name: string;
  /** A stable id (filesystem UUID, WWN, LV UUID...); backups chain by `id ?? name`. */
  id?: string;
}

/** Counters of one backup run. */
export interface BackupStats {
  /** Bytes read from the source. */
  bytesRead: number;
  /** Compressed bytes of chunks newly written to the repository. */
  bytesStored: number;
  /** Bytes CBT reported as changed since the parent (capacity on a full backup). */
  bytesChanged: number;
  /** Chunks in the backup. */
  chunksTotal: number;
  /** Chunks read and hashed. */
  chunksRead: number;
  /** Chunks newly written to the store. */
  chunksNew: number;
  /** Chunks read whose content the store already had. */
  chunksDeduplicated: number;
  /** Chunks taken from the parent's index without reading. */
  chunksReused: number;
  /** All-zero chunks (stored as nothing). */
  chunksZero: number;
}

/** Verification state recorded in a manifest. */
export interface VerificationState {
  /** `none` until a deep verify ran; then `ok` or `failed`. */
  state: "none" | "ok" | "failed";
  /** When the last deep verify finished (ISO 8601 UTC), or null. */
  time: string | null;
  /** Bad chunks the last deep verify found in this backup. */
  badChunks: number;
}

/** The JSON manifest of one backup (`backups/<id>.json`). */
export interface Manifest {
  /** Always `"blksnap-backup"`. */
  format: "blksnap-backup";
  /** Format version. */
  version: number;
  /** Backup id (also the file name). */
  id: string;
  /** Device identity and capacity. */
  device: { name: string; id: string | null; capacity: bigint };
  /** Chunk size in bytes. */
  chunkSize: number;
  /** Number of chunks. */
  chunkCount: number;
  /** CBT cursor at the snapshot, or null when the source had no tracker. */
  cbt: CbtCursor | null;
  /** The backup this one reused digests from, or null. */
  parent: string | null;
  /** Full or incremental. */
  mode: "full" | "incremental";
  /** Why this mode was chosen. */
  reason: string;
  /** Start of the run (ISO 8601 UTC). */
  startTime: string;
  /** End of the run (ISO 8601 UTC). */
  endTime: string;
  /** Counters. */
  stats: BackupStats;
  /** Always `"complete"`: a manifest exists only for a finished backup. */
  state: "complete";
  /** SHA-256 of the index file, hex. */
  indexSha256: string;
  /** Result of the last deep verify. */
  verification: VerificationState;
}

/** Encode a manifest as JSON bytes (capacity as a decimal string). */
export function encodeManifest(m: Manifest): Uint8Array {
  const json = JSON.stringify(
    m,
    (_k, v) => (typeof v === "bigint" ? v.toString() : v),
    2,
  );
  return new TextEncoder().encode(json + "\n");
}

const STAT_KEYS = [
  "bytesRead",
  "bytesStored",
  "bytesChanged",
  "chunksTotal",
  "chunksRead",
  "chunksNew",
  "chunksDeduplicated",
  "chunksReused",
  "chunksZero",
] as const;

/** Parse and check a manifest read from `path`. */
export function parseManifest(bytes: Uint8Array, path: string): Manifest {
  const o = parseJsonObject(bytes, path);
  const r = new Reader(path);
  if (o.format !== "blksnap-backup") r.fail("format", '"blksnap-backup"');
  const version = r.uint(o, "version");
  if (version !== FORMAT_VERSION) throw new CorruptError(path, `unsupported version ${version}`);
  const id = r.str(o, "id");
  if (!isBackupId(id)) r.fail("id", "a backup id");
  const d = r.obj(o, "device");
  const device = {
    name: r.str(d, "name", "device.name"),
    id: r.strOrNull(d, "id", "device.id"),
    capacity: r.bigint(d, "capacity", "device.capacity"),
  };
  const chunkSize = r.uint(o, "chunkSize");
  if (!isValidChunkSize(chunkSize)) r.fail("chunkSize", "a valid chunk size");
  const chunkCount = r.uint(o, "chunkCount");
  const expected = (device.capacity + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
  if (BigInt(chunkCount) !== expected) r.fail("chunkCount", `ceil(capacity / chunkSize)`);
  let cbt: CbtCursor | null = null;
  if (o.cbt !== null) {
    const c = r.obj(o, "cbt");
    cbt = {
      generationId: r.str(c, "generationId", "cbt.generationId"),
      changesNumber: r.uint(c, "changesNumber", "cbt.changesNumber"),
      blockSize: r.uint(c, "blockSize", "cbt.blockSize"),
    };
  }
  const parent = r.strOrNull(o, "parent");
  if (parent !== null && !isBackupId(parent)) r.fail("parent", "a backup id or null");
  const s = r.obj(o, "stats");
  const stats = {} as BackupStats;
  for (const k of STAT_KEYS) stats[k] = r.uint(s, k, `stats.${k}`);
  const v = r.obj(o, "verification");
  const verification: VerificationState = {
    state: r.oneOf(v, "state", ["none", "ok", "failed"] as const, "verification.state"),
    time: v.time === null ? null : r.time(v, "time", "verification.time"),
    badChunks: r.uint(v, "badChunks", "verification.badChunks"),
  };
  const indexSha256 = r.str(o, "indexSha256");
  if (!isDigestHex(indexSha256)) r.fail("indexSha256", "64 hex digits");
  if (o.state !== "complete") r.fail("state", '"complete"');
  return {
    format: "blksnap-backup",
    version,
    id,
    device,
    chunkSize,
    chunkCount,
    cbt,
    parent,
    mode: r.oneOf(o, "mode", ["full", "incremental"] as const),
    reason: r.str(o, "reason"),
    startTime: r.time(o, "startTime"),
    endTime: r.time(o, "endTime"),
    stats,
    state: "complete",
    indexSha256,
    verification,
  };
}

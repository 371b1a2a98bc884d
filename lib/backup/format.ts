/**
 * What every on-disk format of the backup repository (version 1) shares:
 * the constants (format version, digest and chunk sizes, size bounds), the
 * backup id and digest spellings, SHA-256 and byte helpers, and
 * {@linkcode FieldChecker}, the strict JSON field checker the config,
 * manifest and failed-run parsers use. The formats themselves are in
 * `config.ts`, `chunk.ts`, `index_file.ts` and `manifest.ts`; the layout is
 * in docs/repository-format.md.
 *
 * @module
 */

import { Buffer } from "node:buffer";
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
/** Largest capacity an index may describe: 2^63 - 1 bytes. */
export const MAX_CAPACITY: bigint = (1n << 63n) - 1n;
/** Largest chunk count an index may hold (2^31; 64 GiB of digests). */
export const MAX_CHUNK_COUNT = 2 ** 31;
/** Prefix of temporary files; never data, removed by `gc`. */
export const TEMP_PREFIX = ".tmp-";

const ID_RE = /^\d{8}T\d{9}Z-[0-9a-f]{8}$/;
const HEX64_RE = /^[0-9a-f]{64}$/;

/** True if `n` is a power of two between {@linkcode MIN_CHUNK_SIZE} and {@linkcode MAX_CHUNK_SIZE}. */
export function isValidChunkSize(n: number): boolean {
  return Number.isInteger(n) && n >= MIN_CHUNK_SIZE && n <= MAX_CHUNK_SIZE && (n & (n - 1)) === 0;
}

/** ceil(capacity / chunkSize) as a bigint, unchecked. */
export function chunkCountBig(capacity: bigint, chunkSize: number): bigint {
  return (capacity + BigInt(chunkSize) - 1n) / BigInt(chunkSize);
}

/** Number of chunks of `chunkSize` covering `capacity` bytes. */
export function chunkCountOf(capacity: bigint, chunkSize: number): number {
  const n = chunkCountBig(capacity, chunkSize);
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

/** Zeros that {@linkcode isAllZero} compares against, a piece at a time. */
const ZERO_PIECE = new Uint8Array(64 * 1024);

/**
 * True if every byte of `buf` is zero. Compares 64 KiB pieces against zeros
 * with `Buffer.compare` (a memcmp: about 50 times faster than a loop over
 * 64-bit words in JavaScript, which boxes each word in a BigInt).
 */
export function isAllZero(buf: Uint8Array): boolean {
  for (let at = 0; at < buf.length; at += ZERO_PIECE.length) {
    const piece = buf.subarray(at, at + ZERO_PIECE.length);
    if (Buffer.compare(piece, ZERO_PIECE.subarray(0, piece.length)) !== 0) return false;
  }
  return true;
}

/** The start time encoded in backup id `id` (milliseconds since the epoch). */
export function backupIdTime(id: string): number {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})(\d{3})Z/.exec(id);
  if (!m) return NaN;
  return Date.UTC(+m[1], +m[2] - 1, +m[3], +m[4], +m[5], +m[6], +m[7]);
}

/** True if `s` is a backup id as made by {@linkcode newBackupId}. */
export function isBackupId(s: string): boolean {
  return ID_RE.test(s);
}

/** A new backup id: UTC time to the millisecond plus 8 random hex digits (sorts by time). */
export function newBackupId(now: Date = new Date()): string {
  const t = now.toISOString().replace(/[-:]/g, "").replace(".", ""); // 20261124T031600123Z
  return `${t}-${randomHex(4)}`;
}

/** `bytes` random bytes as lower-case hex. */
export function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return toHex(b);
}

// ---------------------------------------------------------------- JSON files

/** A parsed JSON object. */
export type Json = Record<string, unknown>;

/**
 * Parse `bytes` (read from `path`, at most `max` bytes) as one JSON object,
 * or throw {@linkcode CorruptError}.
 */
export function parseJsonObject(bytes: Uint8Array, path: string, max = MAX_JSON_SIZE): Json {
  if (bytes.length > max) throw new CorruptError(path, "file too large");
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

/** JSON bytes of `value`, indented, bigints as decimal strings, with a final newline. */
export function encodeJson(value: unknown): Uint8Array {
  const json = JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2);
  return new TextEncoder().encode(json + "\n");
}

/**
 * Checks the fields of a JSON object read from one file: each getter returns
 * the field typed, or throws {@linkcode CorruptError} naming the file and
 * the field.
 *
 * @example Read a config's chunk size
 * ```ts
 * import { FieldChecker, parseJsonObject } from "./format.ts";
 * const path = "config.json";
 * const o = parseJsonObject(new TextEncoder().encode('{"chunkSize": 4096}'), path);
 * console.log(new FieldChecker(path).uint(o, "chunkSize")); // 4096
 * ```
 */
export class FieldChecker {
  /** The file the object came from. */
  readonly path: string;
  /** A checker for an object read from `path`. */
  constructor(path: string) {
    this.path = path;
  }
  /** Throw: `field` must be `want`. */
  fail(field: string, want: string): never {
    throw new CorruptError(this.path, `field ${field} must be ${want}`);
  }
  /** An object field. */
  obj(o: Json, k: string, field = k): Json {
    const v = o[k];
    if (typeof v !== "object" || v === null || Array.isArray(v)) this.fail(field, "an object");
    return v as Json;
  }
  /** A string field of at most 4096 characters. */
  str(o: Json, k: string, field = k): string {
    const v = o[k];
    if (typeof v !== "string" || v.length > 4096) this.fail(field, "a string");
    return v;
  }
  /** A string or null. */
  strOrNull(o: Json, k: string, field = k): string | null {
    return o[k] === null ? null : this.str(o, k, field);
  }
  /** A non-negative safe integer. */
  uint(o: Json, k: string, field = k): number {
    const v = o[k];
    if (typeof v !== "number" || !Number.isSafeInteger(v) || v < 0) {
      this.fail(field, "a non-negative integer");
    }
    return v;
  }
  /** A boolean. */
  bool(o: Json, k: string, field = k): boolean {
    const v = o[k];
    if (typeof v !== "boolean") this.fail(field, "a boolean");
    return v;
  }
  /** A decimal string of a 63-bit unsigned integer, as a bigint. */
  bigint(o: Json, k: string, field = k): bigint {
    const v = o[k];
    if (typeof v !== "string" || !/^(0|[1-9]\d{0,18})$/.test(v) || BigInt(v) > MAX_CAPACITY) {
      this.fail(field, "a decimal string of a 63-bit integer");
    }
    return BigInt(v);
  }
  /** An ISO 8601 UTC time string. */
  time(o: Json, k: string, field = k): string {
    const v = this.str(o, k, field);
    if (!/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/.test(v) || isNaN(Date.parse(v))) {
      this.fail(field, "an ISO 8601 UTC time");
    }
    return v;
  }
  /** One of `values`. */
  oneOf<T extends string>(o: Json, k: string, values: readonly T[], field = k): T {
    const v = o[k];
    if (typeof v !== "string" || !(values as readonly string[]).includes(v)) {
      this.fail(field, `one of ${values.join(", ")}`);
    }
    return v as T;
  }
}

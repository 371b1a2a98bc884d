/**
 * The JSON manifest of one backup (`backups/<id>.json`) and the failed-run
 * record (`runs/<id>.json`), with their strict parsers. A manifest exists only
 * for a finished backup; a failed-run record tells the next backup of the
 * device to be full. Format: docs/repository-format.md "Manifests".
 *
 * @module
 */

import { CorruptError } from "./errors.ts";
import {
  chunkCountBig,
  encodeJson,
  FieldChecker,
  FORMAT_VERSION,
  isBackupId,
  isDigestHex,
  isValidChunkSize,
  parseJsonObject,
} from "./format.ts";

/** Largest failed-run record read (bytes). */
export const MAX_RUN_RECORD_SIZE = 64 * 1024;

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

/**
 * The key backups of one device chain by: its stable id, else its name.
 *
 * @example
 * ```ts
 * import { deviceKey } from "./manifest.ts";
 * console.log(deviceKey({ name: "/dev/sdb", id: "wwn-0x5000c500a1b2c3d4" })); // the id
 * ```
 */
export function deviceKey(identity: { name: string; id?: string | null }): string {
  return identity.id ?? identity.name;
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
  return encodeJson(m);
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
  const r = new FieldChecker(path);
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
  if (BigInt(chunkCount) !== chunkCountBig(device.capacity, chunkSize)) {
    r.fail("chunkCount", `ceil(capacity / chunkSize)`);
  }
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

// ---------------------------------------------------------------- failed runs

/** A failed-run record (`runs/<id>.json`). */
export interface FailedRun {
  /** Id the backup would have had. */
  id: string;
  /** Device key (`identity.id ?? identity.name`). */
  device: string;
  /** Start of the run. */
  startTime: string;
  /** Error message. */
  error: string;
}

/** Encode a failed-run record as one JSON line. */
export function encodeFailedRun(record: FailedRun): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(record) + "\n");
}

/**
 * Parse a failed-run record read from `path`. Only `device` and `startTime`
 * are required (they decide the next backup's mode); throws
 * {@linkcode CorruptError} when they are missing.
 */
export function parseFailedRun(bytes: Uint8Array, path: string): FailedRun {
  const o = parseJsonObject(bytes, path);
  const r = new FieldChecker(path);
  return {
    id: typeof o.id === "string" ? o.id : "",
    device: r.str(o, "device"),
    startTime: r.str(o, "startTime"),
    error: typeof o.error === "string" ? o.error : "",
  };
}

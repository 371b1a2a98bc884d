/**
 * The repository config, `config.json`: format, version, id, chunk size and
 * compression, with its strict parser.
 *
 * @module
 */

import { CorruptError } from "./errors.ts";
import {
  encodeJson,
  FieldChecker,
  FORMAT_VERSION,
  isValidChunkSize,
  parseJsonObject,
} from "./format.ts";

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
  /** S3 only: every object is stored with Object Lock retention of this many days. */
  objectLockDays?: number;
  /**
   * Version 2 (encrypted) only: the AEAD, and the MAC of this config (every field but `mac`)
   * under the metadata key, so a changed config is refused once the key is known.
   */
  encryption?: { aead: "chacha20-poly1305"; mac: string };
}

/** Format version of an encrypted repository. */
export const ENCRYPTED_FORMAT_VERSION = 2;

/** The bytes the config MAC covers: the config without `encryption.mac`, as JSON. */
export function configMacInput(config: RepoConfig): Uint8Array {
  const { encryption, ...rest } = config;
  return encodeJson({ ...rest, encryption: encryption ? { aead: encryption.aead } : undefined });
}

/** Encode a config as JSON bytes. */
export function encodeConfig(config: RepoConfig): Uint8Array {
  return encodeJson(config);
}

/**
 * Parse and check `config.json` read from `path`.
 *
 * @example
 * ```ts
 * import { parseConfig } from "./config.ts";
 * const text = JSON.stringify({
 *   format: "blksnap-repository", version: 1, id: "0".repeat(32), chunkSize: 4096,
 *   compression: { algorithm: "zstd", level: 1 }, created: "2026-01-01T00:00:00.000Z",
 * });
 * console.log(parseConfig(new TextEncoder().encode(text), "config.json").chunkSize); // 4096
 * ```
 */
export function parseConfig(bytes: Uint8Array, path: string): RepoConfig {
  const o = parseJsonObject(bytes, path);
  const r = new FieldChecker(path);
  if (o.format !== "blksnap-repository") r.fail("format", '"blksnap-repository"');
  const version = r.uint(o, "version");
  if (version !== FORMAT_VERSION && version !== ENCRYPTED_FORMAT_VERSION) {
    throw new CorruptError(
      path,
      `unsupported repository version ${version} (this blksnap reads versions 1 and 2; a newer ` +
        "blksnap made it)",
    );
  }
  let encryption: RepoConfig["encryption"];
  if (version === ENCRYPTED_FORMAT_VERSION) {
    const e = r.obj(o, "encryption");
    if (e.aead !== "chacha20-poly1305") r.fail("encryption.aead", '"chacha20-poly1305"');
    const mac = r.str(e, "mac", "encryption.mac");
    if (!/^[0-9a-f]{64}$/.test(mac)) r.fail("encryption.mac", "64 hex digits");
    encryption = { aead: "chacha20-poly1305", mac };
  } else if (o.encryption !== undefined) r.fail("encryption", "absent in version 1");
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
    ...(o.objectLockDays === undefined ? {} : { objectLockDays: r.uint(o, "objectLockDays") }),
    ...(encryption ? { encryption } : {}),
  };
}

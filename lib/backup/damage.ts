/**
 * The damage record, `damage.json`: the chunks a deep verify found missing
 * or corrupt, remembered so that dedup never trusts them again. The next
 * backup that reads the same data rewrites such a chunk (which heals every
 * older backup using it), as does `repair` from any source that holds the
 * data; the next deep verify confirms the healing and drops the entry.
 * Written under the repository lock. Format: docs/repository-format.md
 * "Damage record".
 *
 * @module
 */

import { CorruptError } from "./errors.ts";
import { encodeJson, FieldChecker, isBackupId, isDigestHex, parseJsonObject } from "./format.ts";

/** Largest damage record read: 64 MiB (some 200 000 chunks). */
export const MAX_DAMAGE_SIZE = 64 * 1024 * 1024;

/** One damaged chunk. */
export interface DamagedChunk {
  /** What the deep verify found. */
  problem: "missing" | "corrupt";
  /** Its message, e.g. "payload CRC-32 mismatch". */
  detail: string;
  /** When it was first found (ISO 8601 UTC). */
  found: string;
  /** The backups that used it when it was found. */
  backups: string[];
  /** Set once a backup or repair rewrote it from good data; a deep verify then drops the entry. */
  healed: { time: string; by: string } | null;
}

/** The damage record: hex digest → entry. */
export type DamageRecord = Map<string, DamagedChunk>;

/** Encode a damage record as JSON bytes. */
export function encodeDamage(record: DamageRecord): Uint8Array {
  const chunks: Record<string, DamagedChunk> = {};
  for (const [hex, c] of [...record].sort(([a], [b]) => a.localeCompare(b))) chunks[hex] = c;
  return encodeJson({ format: "blksnap-damage", version: 1, chunks });
}

/**
 * Parse a damage record read from `path`.
 *
 * @example
 * ```ts
 * import { encodeDamage, parseDamage } from "./damage.ts";
 * const hex = "ab".repeat(32);
 * const bytes = encodeDamage(new Map([[hex, {
 *   problem: "corrupt", detail: "payload CRC-32 mismatch", found: "2026-01-01T00:00:00.000Z",
 *   backups: [], healed: null,
 * }]]));
 * console.log(parseDamage(bytes, "damage.json").get(hex)?.problem); // corrupt
 * ```
 */
export function parseDamage(bytes: Uint8Array, path: string): DamageRecord {
  const o = parseJsonObject(bytes, path, MAX_DAMAGE_SIZE);
  const r = new FieldChecker(path);
  if (o.format !== "blksnap-damage") r.fail("format", '"blksnap-damage"');
  if (r.uint(o, "version") !== 1) throw new CorruptError(path, `unsupported version ${o.version}`);
  const chunks = r.obj(o, "chunks");
  const out: DamageRecord = new Map();
  for (const hex of Object.keys(chunks)) {
    if (!isDigestHex(hex)) r.fail(`chunks.${hex}`, "named by a digest");
    const c = r.obj(chunks, hex, `chunks.${hex}`);
    const backups = c.backups;
    if (!Array.isArray(backups) || !backups.every((b) => typeof b === "string" && isBackupId(b))) {
      r.fail(`chunks.${hex}.backups`, "a list of backup ids");
    }
    let healed: DamagedChunk["healed"] = null;
    if (c.healed !== null) {
      const h = r.obj(c, "healed", `chunks.${hex}.healed`);
      healed = { time: r.time(h, "time", "healed.time"), by: r.str(h, "by", "healed.by") };
    }
    out.set(hex, {
      problem: r.oneOf(c, "problem", ["missing", "corrupt"] as const, `chunks.${hex}.problem`),
      detail: r.str(c, "detail", `chunks.${hex}.detail`),
      found: r.time(c, "found", `chunks.${hex}.found`),
      backups: backups as string[],
      healed,
    });
  }
  return out;
}

/** Digests of `record` not yet healed: the chunks dedup must not trust. */
export function unhealed(record: DamageRecord): Set<string> {
  const out = new Set<string>();
  for (const [hex, c] of record) if (c.healed === null) out.add(hex);
  return out;
}

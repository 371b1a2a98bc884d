/**
 * Argument parsers of the `blksnap` command: sizes with binary suffixes,
 * `sector:count` ranges, non-negative integers; and byte formatting. The
 * parsers throw commander's `InvalidArgumentError`, so a bad value is a
 * usage error (exit 2) naming the option.
 *
 * @module
 */

import { InvalidArgumentError } from "../deps.ts";
import { formatBytes, parseSize as parseSizeText } from "../lib/size.ts";
import type { SectorRange } from "../lib/tracker.ts";

/**
 * Parse a size in bytes (see `parseSize` in lib/size.ts: `4096`, `512K`,
 * `4M`, `1G`, `2TiB`), as a usage error naming the option when it is not one.
 *
 * @example
 * ```ts
 * import { parseSize } from "./_size.ts";
 * console.log(parseSize("4M") === 4194304n);
 * ```
 */
export function parseSize(text: string): bigint {
  try {
    return parseSizeText(text);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** {@linkcode parseSize}, checked to be a safe integer in `[min, max]`; returns a number. */
export function parseSizeNumber(text: string, min = 0, max = Number.MAX_SAFE_INTEGER): number {
  const n = parseSize(text);
  if (n < BigInt(min) || n > BigInt(max)) {
    throw new InvalidArgumentError(`${text} is out of range (${min}..${max} bytes)`);
  }
  return Number(n);
}

/**
 * Parse a non-negative decimal integer (no sign, no suffix).
 *
 * @example
 * ```ts
 * import { parseCount } from "./_size.ts";
 * console.log(parseCount("7") === 7);
 * ```
 */
export function parseCount(text: string, max = Number.MAX_SAFE_INTEGER): number {
  if (!/^\s*\d+\s*$/.test(text)) {
    throw new InvalidArgumentError(`"${text}" is not a non-negative integer`);
  }
  const n = Number(text.trim());
  if (n > max) throw new InvalidArgumentError(`${text} is larger than ${max}`);
  return n;
}

export type { SectorRange };

/**
 * Parse `sector:count` (512-byte sectors, decimal), as upstream's
 * `markdirtyblock --ranges`.
 *
 * @example
 * ```ts
 * import { parseSectorRange } from "./_size.ts";
 * const r = parseSectorRange("2048:8");
 * console.log(r.sector === 2048n && r.count === 8n);
 * ```
 */
export function parseSectorRange(text: string): SectorRange {
  const m = /^\s*(\d+)\s*:\s*(\d+)\s*$/.exec(text);
  if (!m) throw new InvalidArgumentError(`"${text}" is not a range sector:count`);
  const count = BigInt(m[2]);
  if (count === 0n) throw new InvalidArgumentError(`range ${text} has no sectors`);
  return { sector: BigInt(m[1]), count };
}

export { formatBytes };

/** A duration in milliseconds for people: `850 ms`, `12.3 s`, `4 min 05 s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}

/**
 * Check a snapshot id: a UUID in its text form (returned in lower case).
 *
 * @example
 * ```ts
 * import { parseUuidArg } from "./_size.ts";
 * console.log(parseUuidArg("0F641E87-925A-3CF9-71D4-3A139747B514"));
 * ```
 */
export function parseUuidArg(text: string): string {
  const t = text.trim();
  if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(t)) {
    throw new InvalidArgumentError(`"${text}" is not a snapshot id (a UUID)`);
  }
  return t.toLowerCase();
}

/**
 * Byte sizes as people write them: `4G`, `512K`, `1TiB`, `4096`. The CLI
 * and the examples take sizes this way; {@linkcode formatBytes} prints them
 * back.
 *
 * @module
 */

const UNITS: Record<string, bigint> = {
  "": 1n,
  K: 1n << 10n,
  M: 1n << 20n,
  G: 1n << 30n,
  T: 1n << 40n,
  P: 1n << 50n,
};

/**
 * Parse a size in bytes: a decimal integer with an optional binary suffix
 * `K`, `M`, `G`, `T`, `P` (powers of 1024, case-insensitive; `KiB`, `KB`
 * and `K` are the same), e.g. `4096`, `512K`, `4M`, `1G`, `2TiB`. Throws a
 * `RangeError` naming the text otherwise.
 *
 * @example
 * ```ts
 * import { parseSize } from "./size.ts";
 * console.log(parseSize("4G")); // 4294967296n
 * ```
 */
export function parseSize(text: string): bigint {
  const m = /^\s*(\d+)\s*([kmgtp]?)(i?b)?\s*$/i.exec(text);
  if (!m || (m[3] !== undefined && m[2] === "")) {
    throw new RangeError(
      `"${text}" is not a size (an integer with an optional K, M, G, T or P suffix)`,
    );
  }
  return BigInt(m[1]) * UNITS[m[2].toUpperCase()];
}

/**
 * A byte count for people: `512 B`, `4.0 KiB`, `1.5 GiB`.
 *
 * @example
 * ```ts
 * import { formatBytes } from "./size.ts";
 * console.log(formatBytes(1536)); // 1.5 KiB
 * ```
 */
export function formatBytes(bytes: number | bigint): string {
  const n = Number(bytes);
  if (Math.abs(n) < 1024) return `${n} B`;
  const units = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
  let v = n / 1024;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${v.toFixed(1)} ${units[i]}`;
}

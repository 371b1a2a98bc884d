/**
 * A set of block numbers kept as sorted, disjoint, non-adjacent half-open
 * ranges `[start, end)`: which blocks of an overlay hold written data. Small
 * when writes are clustered, exact whatever they are.
 *
 * @module
 */

/** One run of a {@linkcode BlockRanges.split}: blocks `[start, end)`, in the set or not. */
export interface BlockRun {
  /** First block. */
  start: number;
  /** Block after the last. */
  end: number;
  /** Whether these blocks are in the set. */
  inSet: boolean;
}

/**
 * Sorted disjoint ranges of block numbers.
 *
 * @example
 * ```ts
 * import { BlockRanges } from "./block_ranges.ts";
 * const r = new BlockRanges();
 * r.add(2, 4);
 * r.add(4, 6); // joins [2, 6)
 * console.log(r.toArray(), r.split(0, 8).map((x) => x.inSet)); // [[2, 6]] [false, true, false]
 * ```
 */
export class BlockRanges {
  // starts[i] < ends[i] < starts[i + 1]: disjoint and never touching.
  #starts: number[] = [];
  #ends: number[] = [];

  /** Ranges from `[start, end)` pairs (checked: sorted, disjoint, non-empty). */
  static fromArray(pairs: Array<[number, number]>): BlockRanges {
    const r = new BlockRanges();
    let prevEnd = -1;
    for (const [s, e] of pairs) {
      if (!(Number.isSafeInteger(s) && Number.isSafeInteger(e) && s > prevEnd && e > s)) {
        throw new RangeError(`block range [${s}, ${e}) is out of order or empty`);
      }
      r.#starts.push(s);
      r.#ends.push(e);
      prevEnd = e;
    }
    return r;
  }

  /** The ranges as `[start, end)` pairs, in order. */
  toArray(): Array<[number, number]> {
    return this.#starts.map((s, i) => [s, this.#ends[i]]);
  }

  /** Number of ranges. */
  get rangeCount(): number {
    return this.#starts.length;
  }

  /** Number of blocks in the set. */
  get blockCount(): number {
    let n = 0;
    for (let i = 0; i < this.#starts.length; i++) n += this.#ends[i] - this.#starts[i];
    return n;
  }

  /** Index of the first range whose end is beyond `block`. */
  #firstEndingAfter(block: number): number {
    let lo = 0;
    let hi = this.#ends.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (this.#ends[mid] <= block) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** Whether `block` is in the set. */
  has(block: number): boolean {
    const i = this.#firstEndingAfter(block);
    return i < this.#starts.length && this.#starts[i] <= block;
  }

  /** Add blocks `[start, end)`, joining ranges they touch. */
  add(start: number, end: number): void {
    if (end <= start) return;
    // Ranges that overlap or touch [start, end) are replaced by their union.
    const i = this.#firstEndingAfter(start - 1);
    let j = i;
    let s = start;
    let e = end;
    while (j < this.#starts.length && this.#starts[j] <= end) {
      s = Math.min(s, this.#starts[j]);
      e = Math.max(e, this.#ends[j]);
      j++;
    }
    this.#starts.splice(i, j - i, s);
    this.#ends.splice(i, j - i, e);
  }

  /** Blocks `[start, end)` as alternating runs in and out of the set, in order. */
  split(start: number, end: number): BlockRun[] {
    const out: BlockRun[] = [];
    let at = start;
    for (let i = this.#firstEndingAfter(start); i < this.#starts.length && at < end; i++) {
      const s = Math.max(this.#starts[i], at);
      if (s >= end) break;
      if (s > at) out.push({ start: at, end: s, inSet: false });
      const e = Math.min(this.#ends[i], end);
      out.push({ start: s, end: e, inSet: true });
      at = e;
    }
    if (at < end) out.push({ start: at, end, inSet: false });
    return out;
  }
}

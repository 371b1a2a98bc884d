/**
 * The change-block-tracking map of a device, in pure TypeScript: usable
 * without libblksnap, e.g. from bytes saved by an earlier run.
 *
 * @module
 */

/**
 * A tracker's CBT parameters, as `Tracker.cbtInfo()` returns them.
 *
 * @example
 * ```ts
 * import type { CbtInfo } from "@blksnap/blksnap";
 * const info: CbtInfo = {
 *   deviceCapacity: 1n << 30n,
 *   blockSize: 65536,
 *   blockCount: 16384,
 *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a",
 *   changesNumber: 3,
 * };
 * console.assert(info.blockCount * info.blockSize === 1 << 30);
 * ```
 */
export interface CbtInfo {
  /** The device's capacity in bytes. */
  deviceCapacity: bigint;
  /** The tracking block size in bytes (a power of two). */
  blockSize: number;
  /** The number of tracking blocks: one map byte each. */
  blockCount: number;
  /** The map's generation (UUID text). A new one means "back up in full". */
  generationId: string;
  /** The number of the last snapshot taken (0..255) in this generation. */
  changesNumber: number;
}

/**
 * A byte range of the device.
 *
 * @example
 * ```ts
 * import type { Extent } from "@blksnap/blksnap";
 * const first: Extent = { offset: 0n, length: 65536n };
 * console.assert(first.length === 65536n);
 * ```
 */
export interface Extent {
  /** The first byte. */
  offset: bigint;
  /** The number of bytes. */
  length: bigint;
}

/** Internal piece length a single byte array is viewed in: the skip granularity. */
const PIECE = 65536;
const U32_MAX = 0xffff_ffff;

interface PieceStats {
  /** True if every byte is `value`. */
  uniform: boolean;
  /** The common value of a uniform piece. */
  value: number;
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0;
}

function checkSince(since: unknown): number {
  if (typeof since !== "number") {
    throw new TypeError(`since must be a number, got ${typeof since}`);
  }
  if (!Number.isInteger(since) || since < 0 || since > 255) {
    throw new RangeError(`since must be an integer 0..255, got ${since}`);
  }
  return since;
}

function validateInfo(info: CbtInfo): CbtInfo {
  if (typeof info !== "object" || info === null) throw new TypeError("info must be an object");
  const { deviceCapacity, blockSize, blockCount, generationId, changesNumber } = info;
  if (typeof deviceCapacity !== "bigint") {
    throw new TypeError("info.deviceCapacity must be a bigint");
  }
  if (deviceCapacity < 0n || deviceCapacity >= 1n << 64n) {
    throw new RangeError(`info.deviceCapacity out of range: ${deviceCapacity}`);
  }
  if (typeof blockSize !== "number" || typeof blockCount !== "number") {
    throw new TypeError("info.blockSize and info.blockCount must be numbers");
  }
  if (!isPowerOfTwo(blockSize) || blockSize > 2 ** 31) {
    throw new RangeError(`info.blockSize must be a power of two up to 2^31, got ${blockSize}`);
  }
  if (!Number.isInteger(blockCount) || blockCount < 0 || blockCount > U32_MAX) {
    throw new RangeError(`info.blockCount must be an integer 0..2^32-1, got ${blockCount}`);
  }
  if (BigInt(blockCount) * BigInt(blockSize) < deviceCapacity) {
    throw new RangeError(
      `info.blockCount * info.blockSize (${blockCount} * ${blockSize}) is less than the capacity ${deviceCapacity}`,
    );
  }
  if (typeof generationId !== "string") throw new TypeError("info.generationId must be a string");
  if (typeof changesNumber !== "number") {
    throw new TypeError("info.changesNumber must be a number");
  }
  if (!Number.isInteger(changesNumber) || changesNumber < 0 || changesNumber > 255) {
    throw new RangeError(`info.changesNumber must be an integer 0..255, got ${changesNumber}`);
  }
  return Object.freeze({ deviceCapacity, blockSize, blockCount, generationId, changesNumber });
}

/**
 * A CBT map: one byte per tracking block, holding the number of the last
 * snapshot whose generation changed the block (the kernel's *read map*,
 * frozen when a snapshot is taken), together with its {@linkcode CbtInfo}.
 *
 * **What `since` means.** Every query takes `since`, a change number
 * (0..255). Block `i` *has changed since `since`* exactly when
 * `map[i] > since`. For an incremental backup, `since` is the
 * `changesNumber` saved with the previous backup of the same
 * `generationId`; after the next snapshot is taken, the blocks with
 * `map[i] > since` are the ones written after the previous snapshot. With
 * `since = 0` the result is every block written since the tracker was
 * attached (or since the generation began). When `generationId` differs from
 * the saved one, the map says nothing about the previous backup: back up in
 * full. `since = 255` selects nothing.
 *
 * The map does not copy the bytes it is given: do not change them afterwards.
 * Byte offsets are `bigint`, so capacities above 2^53 bytes are exact.
 *
 * @example Changed extents of a saved map
 * ```ts
 * import { CbtMap } from "@blksnap/blksnap";
 * const bytes = new Uint8Array([0, 2, 3, 0, 1, 4]);
 * const map = new CbtMap({
 *   deviceCapacity: 6n * 4096n - 100n,
 *   blockSize: 4096,
 *   blockCount: 6,
 *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a",
 *   changesNumber: 4,
 * }, bytes);
 * console.log(map.changedBlocks(1)); // [1, 2, 5]
 * console.log(map.changedExtents(1));
 * // [{ offset: 4096n, length: 8192n }, { offset: 20480n, length: 3996n }]
 * console.log(map.changedBytes(1)); // 12188n
 * ```
 */
export class CbtMap {
  /** The map's parameters (frozen). */
  readonly info: Readonly<CbtInfo>;
  #pieces: readonly Uint8Array[];
  #pieceLength: number;
  #stats = new WeakMap<Uint8Array, PieceStats>();

  /**
   * A map from its info and its bytes: one `Uint8Array` of
   * `info.blockCount` bytes, or pieces of it (all of one length but the
   * last, which may be shorter), e.g. a map read in parts. The same
   * `Uint8Array` may be given as several pieces (a sparse map that repeats a
   * zero piece costs its memory once).
   *
   * Throws `TypeError` for wrong types and `RangeError` for inconsistent
   * sizes (the byte count must equal `blockCount`; `blockCount * blockSize`
   * must cover the capacity).
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const zero = new Uint8Array(1024);
   * const map = new CbtMap({
   *   deviceCapacity: 2048n * 65536n,
   *   blockSize: 65536,
   *   blockCount: 2048,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a",
   *   changesNumber: 0,
   * }, [zero, zero]);
   * console.assert(map.changedBytes(0) === 0n);
   * ```
   */
  constructor(info: CbtInfo, bytes: Uint8Array | readonly Uint8Array[]) {
    this.info = validateInfo(info);
    const count = this.info.blockCount;
    if (bytes instanceof Uint8Array) {
      if (bytes.length !== count) {
        throw new RangeError(`the map has ${bytes.length} bytes, info.blockCount is ${count}`);
      }
      const pieces: Uint8Array[] = [];
      for (let at = 0; at < count; at += PIECE) {
        pieces.push(bytes.subarray(at, Math.min(at + PIECE, count)));
      }
      this.#pieces = pieces;
      this.#pieceLength = PIECE;
      return;
    }
    if (!Array.isArray(bytes)) {
      throw new TypeError("bytes must be a Uint8Array or an array of Uint8Array");
    }
    const pieces = bytes as readonly unknown[];
    let total = 0;
    const length = pieces.length > 0 ? (pieces[0] as Uint8Array)?.length : 0;
    for (let k = 0; k < pieces.length; k++) {
      const piece = pieces[k];
      if (!(piece instanceof Uint8Array)) throw new TypeError(`bytes[${k}] is not a Uint8Array`);
      const last = k === pieces.length - 1;
      if (piece.length === 0 || (last ? piece.length > length : piece.length !== length)) {
        throw new RangeError(
          `bytes[${k}] has ${piece.length} bytes; pieces must be ${length} bytes (the last at most)`,
        );
      }
      total += piece.length;
    }
    if (total !== count) {
      throw new RangeError(`the map has ${total} bytes, info.blockCount is ${count}`);
    }
    this.#pieces = pieces as Uint8Array[];
    this.#pieceLength = length || PIECE;
  }

  /** The map's generation (UUID text), as in {@linkcode CbtInfo}. */
  get generationId(): string {
    return this.info.generationId;
  }

  /** The number of the last snapshot taken, as in {@linkcode CbtInfo}. */
  get changesNumber(): number {
    return this.info.changesNumber;
  }

  /** The tracking block size in bytes. */
  get blockSize(): number {
    return this.info.blockSize;
  }

  /** The number of blocks (map bytes). */
  get blockCount(): number {
    return this.info.blockCount;
  }

  /**
   * The map byte of `block`: the number of the snapshot that last changed it.
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 1024n, blockSize: 512, blockCount: 2,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 1,
   * }, new Uint8Array([0, 1]));
   * console.assert(map.at(1) === 1);
   * ```
   */
  at(block: number): number {
    if (!Number.isInteger(block) || block < 0 || block >= this.info.blockCount) {
      throw new RangeError(`block must be an integer 0..${this.info.blockCount - 1}, got ${block}`);
    }
    const piece = this.#pieces[Math.floor(block / this.#pieceLength)];
    return piece[block % this.#pieceLength];
  }

  /**
   * The blocks with `map[i] > since`, ascending (see the class doc for
   * `since`). For very large maps prefer {@linkcode CbtMap.changedExtents}.
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 2048n, blockSize: 512, blockCount: 4,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 2,
   * }, new Uint8Array([2, 0, 1, 2]));
   * console.assert(map.changedBlocks(1).join() === "0,3");
   * ```
   */
  changedBlocks(since: number): number[] {
    const out: number[] = [];
    this.#forEachRun(checkSince(since), (start, end) => {
      for (let i = start; i < end; i++) out.push(i);
    });
    return out;
  }

  /**
   * How many blocks have `map[i] > since`.
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 2048n, blockSize: 512, blockCount: 4,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 2,
   * }, new Uint8Array([2, 0, 1, 2]));
   * console.assert(map.changedBlockCount(0) === 3);
   * ```
   */
  changedBlockCount(since: number): number {
    let n = 0;
    this.#forEachRun(checkSince(since), (start, end) => {
      n += end - start;
    });
    return n;
  }

  /**
   * The changed blocks as byte extents: runs of adjacent blocks with
   * `map[i] > since`, coalesced, in ascending order, never adjacent to each
   * other. The last extent is clipped to the device capacity (a block past
   * the capacity contributes nothing).
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 1500n, blockSize: 512, blockCount: 3,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 1,
   * }, new Uint8Array([1, 1, 1]));
   * console.assert(map.changedExtents(0)[0].length === 1500n);
   * ```
   */
  changedExtents(since: number): Extent[] {
    const out: Extent[] = [];
    this.#forEachExtent(checkSince(since), (offset, length) => out.push({ offset, length }));
    return out;
  }

  /**
   * {@linkcode CbtMap.changedExtents} as a lazy iterator: extents are found
   * as the loop asks for them, so a huge map never holds them all in memory.
   * `since` is checked at the call.
   *
   * @example Copy changed extents as they are found
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 2048n, blockSize: 512, blockCount: 4,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 1,
   * }, new Uint8Array([1, 0, 1, 1]));
   * for (const { offset, length } of map.extents(0)) console.log(offset, length);
   * ```
   */
  extents(since: number): IterableIterator<Extent> {
    return this.#extentGenerator(checkSince(since));
  }

  /**
   * The total length of {@linkcode CbtMap.changedExtents}, in bytes.
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const map = new CbtMap({
   *   deviceCapacity: 1500n, blockSize: 512, blockCount: 3,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 1,
   * }, new Uint8Array([0, 1, 1]));
   * console.assert(map.changedBytes(0) === 988n);
   * ```
   */
  changedBytes(since: number): bigint {
    let total = 0n;
    this.#forEachExtent(checkSince(since), (_offset, length) => {
      total += length;
    });
    return total;
  }

  /**
   * A copy of the map bytes, e.g. to save them with the info.
   *
   * @example
   * ```ts
   * import { CbtMap } from "@blksnap/blksnap";
   * const info = {
   *   deviceCapacity: 1024n, blockSize: 512, blockCount: 2,
   *   generationId: "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a", changesNumber: 1,
   * };
   * const copy = new CbtMap(info, new CbtMap(info, new Uint8Array([1, 0])).toBytes());
   * console.assert(copy.at(0) === 1);
   * ```
   */
  toBytes(): Uint8Array<ArrayBuffer> {
    const out = new Uint8Array(this.info.blockCount);
    let at = 0;
    for (const piece of this.#pieces) {
      out.set(piece, at);
      at += piece.length;
    }
    return out;
  }

  #forEachExtent(since: number, emit: (offset: bigint, length: bigint) => void): void {
    const size = BigInt(this.info.blockSize);
    const capacity = this.info.deviceCapacity;
    this.#forEachRun(since, (start, end) => {
      const offset = BigInt(start) * size;
      let stop = BigInt(end) * size;
      if (stop > capacity) stop = capacity;
      if (stop > offset) emit(offset, stop - offset);
    });
  }

  #pieceStats(piece: Uint8Array): PieceStats {
    let stats = this.#stats.get(piece);
    if (stats !== undefined) return stats;
    const value = piece[0];
    let uniform = true;
    const n = piece.length;
    let i = 0;
    if ((piece.byteOffset & 3) === 0 && n >= 4) {
      const words = new Uint32Array(piece.buffer, piece.byteOffset, n >>> 2);
      const pattern = (value * 0x01010101) >>> 0;
      for (let w = 0; w < words.length; w++) {
        if (words[w] !== pattern) {
          uniform = false;
          break;
        }
      }
      i = words.length << 2;
    }
    for (; uniform && i < n; i++) if (piece[i] !== value) uniform = false;
    stats = { uniform, value };
    this.#stats.set(piece, stats);
    return stats;
  }

  /** Calls `emit(start, end)` for each maximal run of blocks with map > since. */
  #forEachRun(since: number, emit: (start: number, end: number) => void): void {
    let runStart = -1;
    for (let k = 0; k < this.#pieces.length; k++) {
      runStart = this.#scanPiece(k, since, runStart, emit);
    }
    if (runStart >= 0) emit(runStart, this.info.blockCount);
  }

  /** The extents of {@linkcode CbtMap.extents}, produced one piece at a time. */
  *#extentGenerator(since: number): Generator<Extent, void, undefined> {
    const size = BigInt(this.info.blockSize);
    const capacity = this.info.deviceCapacity;
    const found: Extent[] = [];
    const emit = (start: number, end: number): void => {
      const offset = BigInt(start) * size;
      let stop = BigInt(end) * size;
      if (stop > capacity) stop = capacity;
      if (stop > offset) found.push({ offset, length: stop - offset });
    };
    let runStart = -1;
    for (let k = 0; k < this.#pieces.length; k++) {
      runStart = this.#scanPiece(k, since, runStart, emit);
      yield* found;
      found.length = 0;
    }
    if (runStart >= 0) emit(runStart, this.info.blockCount);
    yield* found;
  }

  /**
   * Scans piece `k` for runs of bytes > since. `runStart` is the first block
   * of a run still open from the previous piece, or -1; returns the same for
   * the next piece. Calls `emit(start, end)` for each run that ends here.
   */
  #scanPiece(
    k: number,
    since: number,
    runStart: number,
    emit: (start: number, end: number) => void,
  ): number {
    const piece = this.#pieces[k];
    const base = k * this.#pieceLength;
    const stats = this.#pieceStats(piece);
    if (stats.uniform) {
      if (stats.value > since) return runStart < 0 ? base : runStart;
      if (runStart >= 0) emit(runStart, base);
      return -1;
    }
    // Word test "some byte > since": for since <= 127 adding 127 - since to
    // every byte sets its top bit exactly when it exceeds since (bytes with
    // the top bit already set are caught by the OR); carries out of a byte
    // only happen for bytes > since, so they never hide a hit.
    const add = since <= 127 ? 0x01010101 * (127 - since) : 0;
    const n = piece.length;
    const words = (piece.byteOffset & 3) === 0
      ? new Uint32Array(piece.buffer, piece.byteOffset, n >>> 2)
      : null;
    let i = 0;
    while (i < n) {
      if (runStart < 0) {
        if (words !== null && (i & 3) === 0) {
          let w = i >>> 2;
          const nw = words.length;
          if (since <= 127) {
            while (w < nw && (((words[w] + add) | words[w]) & 0x80808080) === 0) w++;
          } else {
            while (w < nw && (words[w] & 0x80808080) === 0) w++;
          }
          i = w << 2;
          if (i >= n) break;
        }
        if (piece[i] > since) runStart = base + i;
        i++;
      } else {
        if (piece[i] <= since) {
          emit(runStart, base + i);
          runStart = -1;
        }
        i++;
      }
    }
    return runStart;
  }
}

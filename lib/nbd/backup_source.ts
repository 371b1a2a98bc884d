/**
 * A backup point as a {@linkcode BlockSource}: the backup's index maps each
 * chunk-sized range of the device to a chunk digest; reads fetch those chunks
 * through the repository (which checks, decompresses and verifies each one),
 * keep the latest in an LRU cache, and read ahead when a client reads
 * sequentially. All-zero chunks are never fetched: they read as zeros and
 * report as holes. A damaged or missing chunk fails its range only, with
 * `EIO`, and is logged once with its digest.
 *
 * @module
 */

import { ChunkReader } from "../backup/chunk_reader.ts";
import { RepoError } from "../backup/errors.ts";
import { chunkLengthOf, DIGEST_SIZE, toHex } from "../backup/format.ts";
import type { Manifest } from "../backup/manifest.ts";
import type { Repository } from "../backup/repository.ts";
import type { BlockSource, Extent, ReadPiece } from "./block_source.ts";
import { mergeExtents } from "./block_source.ts";
import { ChunkCache, type ChunkCacheStats } from "./chunk_cache.ts";
import { NbdErrno } from "./protocol.ts";

/** Options of {@linkcode BackupPointSource.open}. */
export interface BackupPointSourceOptions {
  /** Memory for decoded chunks, in bytes (at least 2 × read-ahead + 4 chunks are kept). @default 67108864 */
  cacheBytes?: number;
  /** Chunks fetched ahead of a sequential reader; 0 turns read-ahead off. @default 4 */
  readAhead?: number;
  /** Where damaged chunks are reported. */
  log?: (message: string) => void;
}

/** Counters of a {@linkcode BackupPointSource}. */
export interface BackupPointStats extends ChunkCacheStats {
  /** Chunks fetched ahead of a reader. */
  prefetched: number;
  /** Reads of ranges that failed (damaged or missing chunks). */
  failedReads: number;
}

/** The chunks of a read that fall in `[offset, offset + length)`. */
interface ChunkSpan {
  index: number;
  /** Offset of the chunk in the device. */
  start: number;
  /** Bytes of the chunk. */
  length: number;
}

/**
 * The device image of one backup, read-only, served from its repository.
 *
 * @example Read the first sector of a backup point
 * ```ts ignore
 * import { Repository } from "../backup/mod.ts";
 * import { BackupPointSource } from "./backup_source.ts";
 * const repo = await Repository.open("/backup/repo");
 * const source = await BackupPointSource.open(repo, "20261124T031600123Z-0a1b2c3d");
 * const pieces = await source.read(0, 512);
 * console.log(pieces[0].kind);
 * ```
 */
export class BackupPointSource implements BlockSource {
  /** Device size in bytes. */
  readonly size: number;
  /** Always false: a backup point never changes. */
  readonly writable = false;
  /** The backup's manifest. */
  readonly manifest: Manifest;
  // Checked chunk reads on this thread, stored objects read into reused
  // buffers (a fresh buffer per chunk costs more in page faults than the read).
  readonly #reader: ChunkReader;
  readonly #chunkSize: number;
  readonly #digests: Uint8Array;
  readonly #zero: Uint8Array; // 1 = the chunk is all zeros (never stored)
  readonly #cache: ChunkCache<Uint8Array>;
  readonly #readAhead: number;
  readonly #log: (message: string) => void;
  readonly #reported = new Set<string>();
  // Where recent reads ended: a read that starts at one of them (or spans
  // chunks) is part of a sequential scan and triggers read-ahead. Random
  // reads (file-system metadata) do not.
  readonly #ends = new Set<number>();
  #prefetched = 0;
  #failedReads = 0;

  private constructor(
    repo: Repository,
    manifest: Manifest,
    chunkSize: number,
    capacity: number,
    digests: Uint8Array,
    options: BackupPointSourceOptions,
  ) {
    this.#reader = ChunkReader.start(repo, { workers: 0 });
    this.manifest = manifest;
    this.#chunkSize = chunkSize;
    this.size = capacity;
    this.#digests = digests;
    const count = digests.length / DIGEST_SIZE;
    this.#zero = new Uint8Array(count);
    for (let i = 0; i < count; i++) {
      let z = 1;
      for (let b = i * DIGEST_SIZE; b < (i + 1) * DIGEST_SIZE; b++) {
        if (digests[b] !== 0) {
          z = 0;
          break;
        }
      }
      this.#zero[i] = z;
    }
    this.#readAhead = Math.max(0, Math.floor(options.readAhead ?? 4));
    const byBytes = Math.floor((options.cacheBytes ?? 64 * 1024 * 1024) / chunkSize);
    this.#cache = new ChunkCache(Math.max(byBytes, 2 * this.#readAhead + 4));
    this.#log = options.log ?? (() => {});
  }

  /**
   * Open backup `backupId` of `repo`: its manifest and index are read and
   * checked now; chunks are read when first needed.
   */
  static async open(
    repo: Repository,
    backupId: string,
    options: BackupPointSourceOptions = {},
  ): Promise<BackupPointSource> {
    const manifest = await repo.readManifest(backupId);
    const index = await repo.readIndex(manifest);
    if (index.capacity > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new RepoError(
        "INVALID",
        `Backup ${backupId} is ${index.capacity} bytes, more than can be served`,
      );
    }
    return new BackupPointSource(
      repo,
      manifest,
      index.chunkSize,
      Number(index.capacity),
      index.digests,
      options,
    );
  }

  /** Chunk size of the backup. */
  get chunkSize(): number {
    return this.#chunkSize;
  }

  /** Cache and read-ahead counters. */
  get stats(): BackupPointStats {
    return { ...this.#cache.stats, prefetched: this.#prefetched, failedReads: this.#failedReads };
  }

  /** Whether chunk `i` is all zeros (not stored). */
  isZeroChunk(i: number): boolean {
    return this.#zero[i] === 1;
  }

  /** Hex digest of chunk `i`. */
  digestOf(i: number): string {
    return toHex(this.#digests.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE));
  }

  #spans(offset: number, length: number): ChunkSpan[] {
    const out: ChunkSpan[] = [];
    const cs = this.#chunkSize;
    for (let i = Math.floor(offset / cs); i * cs < offset + length; i++) {
      out.push({ index: i, start: i * cs, length: this.#chunkLength(i) });
    }
    return out;
  }

  #chunkLength(i: number): number {
    return chunkLengthOf(i, BigInt(this.size), this.#chunkSize);
  }

  #load(i: number): Promise<Uint8Array> {
    const hex = this.digestOf(i);
    return this.#cache.get(
      hex,
      async () => (await this.#reader.read(hex, this.#chunkSize, this.#chunkLength(i))).data,
    );
  }

  #prefetch(after: number): void {
    const count = this.#zero.length;
    for (let i = after + 1; i <= after + this.#readAhead && i < count; i++) {
      if (this.#zero[i] || this.#cache.has(this.digestOf(i))) continue;
      this.#prefetched++;
      // A failure here is reported when (if) the chunk is really read.
      this.#load(i).catch(() => {});
    }
  }

  #noteRead(offset: number, length: number, spans: ChunkSpan[]): void {
    const sequential = spans.length > 1 || this.#ends.delete(offset);
    this.#ends.add(offset + length);
    while (this.#ends.size > 64) this.#ends.delete(this.#ends.values().next().value!);
    if (sequential && this.#readAhead > 0) this.#prefetch(spans[spans.length - 1].index);
  }

  /** Read `[offset, offset + length)`: data pieces, zero pieces, and `EIO` pieces for bad chunks. */
  async read(offset: number, length: number): Promise<ReadPiece[]> {
    if (length === 0) return [];
    const spans = this.#spans(offset, length);
    this.#noteRead(offset, length, spans);
    const end = offset + length;
    return await Promise.all(spans.map(async (s): Promise<ReadPiece> => {
      const from = Math.max(offset, s.start);
      const to = Math.min(end, s.start + s.length);
      if (this.#zero[s.index]) return { kind: "zero", offset: from, length: to - from };
      try {
        const data = await this.#load(s.index);
        return { kind: "data", offset: from, data: data.subarray(from - s.start, to - s.start) };
      } catch (e) {
        this.#failedReads++;
        const hex = this.digestOf(s.index);
        const why = e instanceof Error ? e.message : String(e);
        const message = `chunk ${hex} (bytes ${s.start}-${
          s.start + s.length - 1
        }) is unreadable: ${why}`;
        if (!this.#reported.has(hex)) {
          this.#reported.add(hex);
          this.#log(message);
        }
        return { kind: "error", offset: from, length: to - from, errno: NbdErrno.EIO, message };
      }
    }));
  }

  /** Allocation from the index: zero chunks are holes reading as zeros, the rest data. */
  extents(offset: number, length: number): Promise<Extent[]> {
    const end = offset + length;
    const out: Extent[] = [];
    for (const s of this.#spans(offset, length)) {
      const from = Math.max(offset, s.start);
      const to = Math.min(end, s.start + s.length);
      const z = this.#zero[s.index] === 1;
      out.push({ length: to - from, hole: z, zero: z });
    }
    return Promise.resolve(mergeExtents(out));
  }

  /** Drop the cache. */
  close(): Promise<void> {
    this.#cache.clear();
    return Promise.resolve();
  }
}

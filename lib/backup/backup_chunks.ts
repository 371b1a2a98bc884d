/**
 * The chunk pipeline of a backup: read each chunk to back up, name it (or
 * find it all zeros), skip it if the store has it, else encode and store it.
 *
 * - Reads go in order into a fixed set of reused buffers (no allocation,
 *   zeroing or page faults per chunk), as many at once as the source serves
 *   ({@linkcode BackupSource.parallelReads}; one at a time otherwise).
 * - Naming and encoding run on a pool of Worker threads
 *   ({@linkcode ChunkWorkers}): one per core by default on 2 or more cores
 *   for 256 MiB or more (`defaultThreads`), as many as the caller asks
 *   otherwise, or on the calling thread (`workers: 0`); the buffers move to
 *   the threads and back. While most chunks are new a thread names and
 *   encodes a chunk in one trip.
 * - Stores run while later chunks are read and encoded; each store is
 *   durable when it returns (its directory entry at the backend's flush), so
 *   a chunk is never named by an index before its bytes are safe.
 *
 * @module
 */

import { BoundedPool } from "./_pool.ts";
import { type ChunkCodec, chunkCodec } from "./chunk_codec.ts";
import { ChunkWorkers, defaultThreads, workerCount } from "./chunk_workers.ts";
import { RepoError } from "./errors.ts";
import { chunkLengthOf, DIGEST_SIZE, isAllZero, toHex, ZERO_DIGEST } from "./format.ts";
import type { BackupStats } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import type { BackupSource } from "./source.ts";
import type { Progress } from "./types.ts";

/** How {@linkcode storeChunks} runs. */
export interface StoreChunksOptions {
  /**
   * Worker threads for naming and encoding; 0 does both on the calling
   * thread. @default `defaultThreads` of the bytes to read (chunk_workers.ts):
   * one per core on 2 or more cores for 256 MiB or more, else 0
   */
  workers?: number;
  /** Chunks in flight (each holds a buffer of one chunk). @default 2 × threads + 2 */
  concurrency?: number;
  /** Called after each chunk with bytes done so far and bytes to do. */
  onProgress?: (progress: Progress) => void;
  /**
   * Called once, when every chunk is named and, if new, encoded: `digests`
   * and `stats` are final, the last stores may still be in flight (a backup
   * prepares its index and manifest meanwhile).
   */
  onEncoded?: () => void;
  /** Stops starting chunks once aborted; the chunks in flight end first. */
  signal?: AbortSignal;
  /** The set of chunks the store holds, when known (no existence check per chunk). */
  known?: Set<string> | null;
  /**
   * Chunks known to be bad (the damage record): stored again when read,
   * never deduplicated against. @default none
   */
  damaged?: Set<string>;
}

/**
 * Back up chunks `toRead` of `source` into `repo`: set their names in
 * `digests` (32 bytes per chunk, by chunk number) and count them in `stats`.
 * Returns the damaged chunks it stored again (healed). Throws the first
 * failure after every chunk in flight has ended; the worker threads are
 * stopped on every path.
 */
export async function storeChunks(
  source: BackupSource,
  repo: Repository,
  toRead: number[],
  digests: Uint8Array,
  stats: BackupStats,
  options: StoreChunksOptions,
): Promise<string[]> {
  const known = options.known ?? null;
  const damaged = options.damaged ?? new Set<string>();
  const healed: string[] = [];
  const { chunkSize } = repo.config;
  const capacity = source.capacity;
  const bytesTotal = toRead.reduce((s, i) => s + chunkLengthOf(i, capacity, chunkSize), 0);
  const threads = workerCount(options.workers ?? defaultThreads(bytesTotal));
  const inFlight = Math.max(1, options.concurrency ?? 2 * Math.max(1, threads) + 2);
  const codec: ChunkCodec = chunkCodec(repo.codecSpec);
  let bytesDone = 0;
  let encoded = 0; // chunks whose name and stored form are known
  const countEncoded = (): void => {
    if (++encoded === toRead.length) options.onEncoded?.();
  };
  if (toRead.length === 0) options.onEncoded?.();
  const pending = new Set<string>(); // names being stored by this run

  // One buffer per chunk in flight, reused; a buffer is taken before a chunk starts.
  const free: Uint8Array[] = [];
  const newBuffer = (): Uint8Array => source.allocate?.(chunkSize) ?? new Uint8Array(chunkSize);
  for (let k = 0; k < Math.min(inFlight, toRead.length); k++) free.push(newBuffer());
  // Stored objects are written into reused buffers too, each held until its store returns:
  // a fresh object per chunk, made on a thread and freed on this one, cost the threads
  // more CPU in page faults and copies than the codec itself (docs/benchmarks.md).
  const outFree: Uint8Array[] = [];
  const outSize = codec.maxStoredSize(chunkSize);

  // Reads start in chunk order; at most `parallelReads` at once.
  const readSlots = Math.max(1, source.parallelReads ?? 1);
  let reading = 0;
  const readWaiters: (() => void)[] = [];
  const read = async (i: number, into: Uint8Array): Promise<void> => {
    while (reading >= readSlots) await new Promise<void>((r) => readWaiters.push(r));
    reading++;
    const offset = BigInt(i) * BigInt(chunkSize);
    try {
      let n: number;
      try {
        n = await source.read(offset, into);
      } catch (e) {
        throw new RepoError(
          "SOURCE",
          `Reading ${source.identity.name} at ${offset} failed: ${(e as Error).message}`,
          { cause: e },
        );
      }
      if (n !== into.length) {
        throw new RepoError(
          "SOURCE",
          `Short read of ${source.identity.name} at ${offset}: ${n} of ${into.length} bytes`,
        );
      }
      stats.bytesRead += n;
    } finally {
      reading--;
      readWaiters.shift()?.();
    }
  };

  using workers = threads > 0 ? ChunkWorkers.start(threads, repo.codecSpec) : null;
  // The share of recent named chunks that were new (a moving average over about 8). While most
  // are, a thread encodes a chunk in the trip that names it (one trip instead of two); once
  // most are stored already (a repeated full backup), the encoding would be wasted.
  let newShare = 1;

  const one = async (i: number, buffer: Uint8Array): Promise<void> => {
    const len = chunkLengthOf(i, capacity, chunkSize);
    // `owned` is the chunk-size view this chunk must give back to `free`;
    // after a trip to a thread it is a new view of the buffer that came back.
    let owned: Uint8Array | null = buffer;
    let data = buffer.subarray(0, len);
    const back = (d: Uint8Array): Uint8Array => {
      owned = new Uint8Array(d.buffer, d.byteOffset, chunkSize);
      return d;
    };
    const release = (): void => {
      // A buffer that went to a thread and did not come back (a failed call) is detached.
      if (owned) free.push(owned.byteLength > 0 ? owned : newBuffer());
      owned = null;
    };
    try {
      await read(i, data);
      let name: Uint8Array | null;
      // The stored object, when a thread encoded it with the name (a chunk expected new).
      let early: { out: Uint8Array; length: number } | null = null;
      if (workers && newShare >= 0.5) {
        const r = await workers.identifyEncode(data, outFree.pop() ?? new Uint8Array(outSize));
        data = back(r.data);
        name = r.name;
        if (name === null) outFree.push(r.out);
        else early = { out: r.out, length: r.length };
      } else if (workers) {
        const r = await workers.identify(data);
        data = back(r.data);
        name = r.name;
      } else {
        name = isAllZero(data) ? null : codec.name(data);
      }
      if (name === null) {
        digests.set(ZERO_DIGEST, i * DIGEST_SIZE);
        stats.chunksZero++;
        countEncoded();
      } else {
        const hex = toHex(name);
        const seen = pending.has(hex);
        pending.add(hex); // before any await, so a twin chunk in flight sees it
        const rewrite = !seen && damaged.has(hex);
        if (seen || (!rewrite && (known ? known.has(hex) : await repo.hasChunk(hex)))) {
          newShare -= newShare / 8;
          if (early) outFree.push(early.out);
          stats.chunksDeduplicated++;
          digests.set(name, i * DIGEST_SIZE);
          countEncoded();
        } else {
          newShare += (1 - newShare) / 8;
          let out: Uint8Array | null = early?.out ?? outFree.pop() ?? new Uint8Array(outSize);
          try {
            let length: number;
            if (early) {
              length = early.length;
            } else if (workers) {
              const r = await workers.encode(data, name, out);
              back(r.data);
              out = r.out;
              length = r.length;
            } else {
              length = codec.encodeInto(data, name, out);
            }
            release(); // the bytes are encoded: the buffer can take the next chunk
            stats.chunksNew++;
            stats.bytesStored += length;
            digests.set(name, i * DIGEST_SIZE);
            countEncoded();
            await repo.putChunk(hex, out.subarray(0, length));
            if (rewrite) healed.push(hex);
          } catch (e) {
            pending.delete(hex);
            out = null; // it may be detached (a failed call) or still in a failed store's hands
            throw e;
          } finally {
            if (out) outFree.push(out);
          }
        }
      }
    } finally {
      release();
    }
    bytesDone += len;
    options.onProgress?.({ bytesDone, bytesTotal });
  };

  options.onProgress?.({ bytesDone: 0, bytesTotal });
  const pool = new BoundedPool(inFlight);
  try {
    for (const i of toRead) {
      options.signal?.throwIfAborted();
      // A free slot in the pool means a free buffer: both are as many as chunks in flight.
      if (!(await pool.run(() => one(i, free.pop() ?? newBuffer())))) break;
    }
  } catch (e) {
    pool.fail(e);
  }
  await pool.drain();
  pool.throwIfFailed();
  return healed;
}

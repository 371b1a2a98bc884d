/**
 * Reading stored chunks back for a restore or a verify: the calling thread
 * fetches each stored object from the repository's backend, and the chunk
 * codec's checks (decompression, CRC-32 or tag, the name against the bytes)
 * run on a pool of Worker threads ({@linkcode ChunkWorkers}) when the caller
 * asks for them, on the calling thread otherwise. Either way a chunk's
 * bytes are returned only after every check passed; a chunk that fails one
 * is a `BAD_CHUNK` error naming it. A thread that dies fails the flow with
 * its own error: it says nothing about the chunk, which is never reported
 * bad for it.
 *
 * @example Read one chunk of a backup, checked
 * ```ts ignore
 * import { ChunkReader } from "./chunk_reader.ts";
 * using reader = ChunkReader.start(repo, { workers: 2 });
 * const { data } = await reader.read(hex, repo.config.chunkSize, 4 << 20);
 * ```
 *
 * @module
 */

import { ChunkStepError, ChunkWorkers, workerCount } from "./chunk_workers.ts";
import type { Repository } from "./repository.ts";

/** Options of {@linkcode ChunkReader.start}. */
export interface ChunkReaderOptions {
  /**
   * Worker threads; 0 checks on the calling thread. @default 0 (a restore
   * passes `defaultThreads`, a deep verify `defaultVerifyThreads`:
   * chunk_workers.ts)
   */
  workers?: number;
}

/** What {@linkcode ChunkReader.read} returns. */
export interface ChunkRead {
  /** The chunk's bytes, every check passed. */
  data: Uint8Array;
  /**
   * Whether they are in the `into` buffer given, whose whole buffer is then
   * `data.buffer` (on threads `into` moved and came back as that buffer);
   * when false, `into` was not used and is the caller's as before.
   */
  usedInto: boolean;
}

/** Checked reads of stored chunks; close it (`using`) to end its use of the threads. */
export class ChunkReader implements Disposable {
  readonly #repo: Repository;
  readonly #workers: ChunkWorkers | null;
  /**
   * Whole buffers that stored objects are read into, reused from chunk to
   * chunk: no more than the reads ever in flight at once. A fresh buffer per
   * chunk costs page faults on every page (a 1.2 MB file: 5-7 ms of CPU read
   * into a new buffer against 0.2 ms into a reused one, this 2-core host).
   */
  readonly #storedBuffers: Uint8Array[] = [];

  private constructor(repo: Repository, workers: ChunkWorkers | null) {
    this.#repo = repo;
    this.#workers = workers;
  }

  /** A reader of `repo`'s chunks, with threads when `options` warrant them. */
  static start(repo: Repository, options: ChunkReaderOptions = {}): ChunkReader {
    const threads = workerCount(options.workers);
    return new ChunkReader(repo, threads > 0 ? ChunkWorkers.start(threads, repo.codecSpec) : null);
  }

  /** Threads checking chunks (0: the calling thread does). */
  get threads(): number {
    return this.#workers?.size ?? 0;
  }

  /** Chunks worth having in flight: enough to keep every thread and the backend busy. */
  get concurrency(): number {
    return Math.max(2 * this.threads + 2, this.#repo.backend.parallelism);
  }

  /**
   * The bytes of chunk `hex` after every check: at most `maxLength`,
   * exactly `exactLength` when given. Throws `BAD_CHUNK` naming it.
   *
   * Decompressed bytes land in `into` when given (a view of at least
   * `maxLength` bytes covering its whole buffer, which the caller reuses
   * from chunk to chunk; with threads it moves to one and back), else in a
   * buffer of their own; a raw chunk's bytes may be a view of another
   * buffer. `usedInto` says which: reuse `data.buffer` when true, `into`
   * when false. After a call that fails, `into`'s buffer may be gone
   * (detached).
   */
  async read(
    hex: string,
    maxLength: number,
    exactLength?: number,
    into?: Uint8Array,
  ): Promise<ChunkRead> {
    const { stored, pooled } = await this.#readStored(hex, maxLength);
    if (this.#workers) {
      const out = into ?? new Uint8Array(maxLength);
      try {
        // A thread always writes the bytes into `out` (a raw chunk's too).
        const r = await this.#workers.decode(stored, hex, maxLength, exactLength, out, pooled);
        if (pooled) this.#giveBack(r.stored);
        return { data: r.data, usedInto: into !== undefined };
      } catch (e) {
        throw e instanceof ChunkStepError ? this.#repo.badChunk(hex, e.message, e) : e;
      }
    }
    try {
      const data = this.#repo.codec.decode(stored, hex, maxLength, exactLength, into);
      // A raw chunk's bytes are a view of the stored object: its buffer goes with them.
      if (pooled && data.buffer !== stored.buffer) this.#giveBack(stored);
      return { data, usedInto: into !== undefined && data.buffer === into.buffer };
    } catch (e) {
      throw this.#repo.badChunk(hex, (e as Error).message, e);
    }
  }

  /**
   * Checks chunk `hex`: every check of {@linkcode ChunkReader.read}
   * (`deep`), or only those needing no decompression, the frame and CRC-32
   * or the tag (`scrub`). Throws `BAD_CHUNK` naming it.
   */
  async check(
    mode: "deep" | "scrub",
    hex: string,
    maxLength: number,
    exactLength?: number,
  ): Promise<void> {
    const { stored, pooled } = await this.#readStored(hex, maxLength);
    if (this.#workers) {
      try {
        const back = await this.#workers.check(mode, stored, hex, maxLength, exactLength, pooled);
        if (pooled) this.#giveBack(back);
      } catch (e) {
        throw e instanceof ChunkStepError ? this.#repo.badChunk(hex, e.message, e) : e;
      }
      return;
    }
    try {
      if (mode === "deep") this.#repo.codec.check(stored, hex, maxLength, exactLength);
      else this.#repo.codec.scrub(stored, hex, maxLength);
    } catch (e) {
      throw this.#repo.badChunk(hex, (e as Error).message, e);
    }
    if (pooled) this.#giveBack(stored);
  }

  /**
   * Stored object `hex`, read into one of the reused buffers where the
   * backend can (`pooled`: the result is a view of a buffer this reader
   * owns whole, which the caller gives back once done with it).
   */
  async #readStored(
    hex: string,
    maxLength: number,
  ): Promise<{ stored: Uint8Array; pooled: boolean }> {
    const size = this.#repo.codec.maxStoredSize(maxLength);
    const i = this.#storedBuffers.findIndex((b) => b.length >= size);
    const buffer = i >= 0 ? this.#storedBuffers.splice(i, 1)[0] : new Uint8Array(size);
    let stored: Uint8Array;
    try {
      stored = await this.#repo.readStoredChunk(hex, maxLength, buffer);
    } catch (e) {
      this.#storedBuffers.push(buffer);
      throw e;
    }
    const pooled = stored.buffer === buffer.buffer;
    if (!pooled) this.#storedBuffers.push(buffer); // the backend read into a buffer of its own
    return { stored, pooled };
  }

  /** A buffer `#readStored` lent, back for the next read (a view of it will do). */
  #giveBack(stored: Uint8Array): void {
    this.#storedBuffers.push(new Uint8Array(stored.buffer as ArrayBuffer));
  }

  /** Stops the threads. Idempotent. */
  close(): void {
    this.#workers?.close();
  }

  /** Same as {@linkcode ChunkReader.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

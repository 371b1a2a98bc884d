/**
 * A pool of Worker threads that run the chunk codec (chunk_codec.ts):
 * hashing and compressing for a backup, decompressing and checking for a
 * restore or a verify, on several cores while the calling thread only reads,
 * writes and keeps order. Deno's "async" zstd runs on the calling thread
 * and `crypto.subtle` takes only the hash, so without these threads a
 * backup waits on one core.
 *
 * Buffers move to a thread and back (transfer), they are not copied: a
 * buffer handed to {@linkcode ChunkWorkers.identify} or
 * {@linkcode ChunkWorkers.encode} is unusable until the call returns it.
 *
 * Threads keep a process alive: close the pool (`using`, or `close()`) on
 * every path out of the flow that started it; a failed or aborted flow
 * closes it in its `finally`.
 *
 * @example Name and encode one chunk on a pool of two threads
 * ```ts ignore
 * import { ChunkWorkers } from "./chunk_workers.ts";
 * using workers = ChunkWorkers.start(2, { level: 1, keys: null });
 * const r = await workers.identify(new Uint8Array(1 << 20).fill(1));
 * if (r.name) console.log((await workers.encode(r.data, r.name)).stored.length);
 * ```
 *
 * @module
 */

import type { ChunkCodecSpec } from "./chunk_codec.ts";
import { transferList } from "./_transfer.ts";

/** What {@linkcode ChunkWorkers.identify} says of a chunk. */
export interface Identified {
  /** The chunk's bytes, handed back. */
  data: Uint8Array;
  /** Its name (digest), or `null` when every byte is zero. */
  name: Uint8Array | null;
}

/** What {@linkcode ChunkWorkers.encode} makes of a chunk. */
export interface Encoded {
  /** The chunk's bytes, handed back. */
  data: Uint8Array;
  /** The output buffer, handed back: the object to store is its first `length` bytes. */
  out: Uint8Array;
  /** The stored object's length. */
  length: number;
}

/**
 * A step of the codec failed on a thread: the chunk it was given fails a
 * check (or cannot be encoded). The message is the step's own. Any other
 * rejection of a {@linkcode ChunkWorkers} call is the pool's failure (a
 * thread died, the pool was closed), which says nothing about the chunk.
 */
export class ChunkStepError extends Error {
  /** Always `"ChunkStepError"`. */
  override name = "ChunkStepError";
}

/**
 * Where the pool loads its threads from. @internal Tests point it at a
 * thread that fails, to prove a flow stops (and blames no chunk) when one does.
 */
export const _internals: { workerUrl: string } = {
  workerUrl: new URL("./_chunk_worker.ts", import.meta.url).href,
};

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  worker: number;
}

/**
 * The threads a flow should use: `requested` (at least 0), else none. Off
 * by default, by measurement (docs/benchmarks.md, "Worker threads vs the
 * calling thread"): on a busy 2-core host the threads cost 1.3-1.6x the CPU
 * of the calling thread (their start, more buffers in flight, hand-offs)
 * and, with no idle core to run on, gained no wall time; a caller with
 * idle cores turns them on (`workers: N`).
 */
export function workerCount(requested: number | undefined): number {
  return Math.max(0, Math.floor(requested ?? 0));
}

/** The pool. */
export class ChunkWorkers implements Disposable {
  readonly #workers: Worker[];
  readonly #load: number[];
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #closed: Error | null = null;

  private constructor(workers: Worker[]) {
    this.#workers = workers;
    this.#load = workers.map(() => 0);
    workers.forEach((w, i) => {
      w.onmessage = (e: MessageEvent) => this.#reply(e.data);
      w.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#fail(new Error(`chunk worker ${i} failed: ${e.message}`));
      };
      w.onmessageerror = () =>
        this.#fail(new Error(`chunk worker ${i} sent an unreadable message`));
    });
  }

  /**
   * Starts `threads` threads (at least 1) running the codec `spec` describes.
   * They load in the background; the first calls wait for them.
   */
  static start(threads: number, spec: ChunkCodecSpec): ChunkWorkers {
    const url = _internals.workerUrl;
    const workers: Worker[] = [];
    try {
      for (let i = 0; i < Math.max(1, threads); i++) {
        const w = new Worker(url, { type: "module" });
        workers.push(w);
        w.postMessage({ op: "init", spec });
      }
    } catch (e) {
      for (const w of workers) w.terminate();
      throw e;
    }
    return new ChunkWorkers(workers);
  }

  /** Threads in the pool. */
  get size(): number {
    return this.#workers.length;
  }

  /**
   * Whether every byte of `data` is zero, and if not its name. `data` must
   * be a view of a buffer the caller owns whole: the buffer moves to the
   * thread and comes back in the result.
   */
  async identify(data: Uint8Array): Promise<Identified> {
    const r = await this.#call({ op: "name", data }, [data.buffer as ArrayBuffer]);
    return { data: r.data as Uint8Array, name: r.zero ? null : r.name as Uint8Array };
  }

  /**
   * The object to store for `data`, named `name`, written into the start of
   * `out` (at least the codec's `maxStoredSize` of `data.length` bytes).
   * Both buffers move as in `identify` and come back in the result.
   */
  async encode(data: Uint8Array, name: Uint8Array, out: Uint8Array): Promise<Encoded> {
    const r = await this.#call({ op: "encode", data, name, out }, [
      data.buffer as ArrayBuffer,
      out.buffer as ArrayBuffer,
    ]);
    return { data: r.data as Uint8Array, out: r.out as Uint8Array, length: r.length as number };
  }

  /**
   * The chunk's bytes from stored object `stored` named `hex`, after every
   * check, written into the start of `out` (at least `maxLength` bytes, a
   * view of a buffer the caller owns whole, which moves and comes back):
   * returns the view of `out` that holds them.
   */
  async decode(
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength: number | undefined,
    out: Uint8Array,
  ): Promise<Uint8Array> {
    const r = await this.#call(
      { op: "decode", stored, hex, maxLength, exactLength, out },
      [...transferList(stored), out.buffer as ArrayBuffer],
    );
    return (r.out as Uint8Array).subarray(0, r.length as number);
  }

  /**
   * Checks stored object `stored` named `hex`: every check of a decode
   * (`deep`), or only the frame and CRC-32 or tag (`scrub`).
   */
  async check(
    mode: "deep" | "scrub",
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength?: number,
  ): Promise<void> {
    await this.#call(
      { op: mode === "deep" ? "check" : "scrub", stored, hex, maxLength, exactLength },
      transferList(stored),
    );
  }

  /** Terminates every thread; calls still waiting fail. Idempotent. */
  close(): void {
    this.#fail(new Error("chunk workers closed"));
  }

  /** Same as {@linkcode ChunkWorkers.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #call(
    message: Record<string, unknown>,
    transfer: ArrayBuffer[],
  ): Promise<Record<string, unknown>> {
    if (this.#closed) return Promise.reject(this.#closed);
    // The least loaded thread; ties go to the lowest index.
    let w = 0;
    for (let i = 1; i < this.#load.length; i++) if (this.#load[i] < this.#load[w]) w = i;
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      this.#pending.set(id, { resolve, reject, worker: w });
      this.#load[w]++;
      this.#workers[w].postMessage({ ...message, id }, transfer);
    });
  }

  #reply(m: { id: number; error?: string }): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    this.#load[p.worker]--;
    if (m.error !== undefined) p.reject(new ChunkStepError(m.error));
    else p.resolve(m as Record<string, unknown>);
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const w of this.#workers) w.terminate();
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
  }
}

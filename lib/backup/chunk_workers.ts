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
 * The threads are shared by the flows of a process and kept between them
 * (started on first use, terminated after a while unused); they never keep
 * the process alive. A flow closes its {@linkcode ChunkWorkers} (`using`,
 * or `close()`) on every path out, a failed or aborted flow in its
 * `finally`: that ends its use, not the threads.
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

import { Worker as NodeWorker } from "node:worker_threads";
import type { ChunkCodecSpec } from "./chunk_codec.ts";
import { fromWire, ownsBuffer, toWire, type Wire } from "./_transfer.ts";

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

/** What {@linkcode ChunkWorkers.decode} gives back. */
export interface Decoded {
  /** The view of the `out` given (its buffer moved and came back) that holds the chunk's bytes. */
  data: Uint8Array;
  /**
   * The stored object given, handed back: when it moved (its buffer was the
   * caller's whole), this is the caller's buffer again, to reuse.
   */
  stored: Uint8Array;
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
export const _internals: { workerUrl: string; idleMs: number } = {
  workerUrl: new URL("./_chunk_worker.ts", import.meta.url).href,
  idleMs: 10_000,
};

/** The threads a flow should use: `requested` (at least 0), else none (the calling thread). */
export function workerCount(requested: number | undefined): number {
  return Math.max(0, Math.floor(requested ?? 0));
}

/**
 * Bytes a flow must have to process before it runs on worker threads by
 * default: starting them costs 0.13-0.17 CPU-s and 0.1-0.45 s (2-core host),
 * about what they save on 256 MiB, and even with the threads started a
 * backup of one 4 MiB chunk took 18-19 ms on them against 13-15 ms on the
 * calling thread (docs/benchmarks.md, "Worker threads by default").
 */
export const THREADS_MIN_BYTES = 256 * 1024 * 1024;

/**
 * The default of `workers` for a backup or a restore of `bytes` bytes: one
 * thread per core when there are at least two and `bytes` is at least
 * {@linkcode THREADS_MIN_BYTES}, else 0 (the calling thread). Chosen by
 * measurement on a 2-core host (docs/benchmarks.md, "Worker threads by
 * default"): with a core free, a backup on threads took about 0.8 of the
 * calling thread's wall time at 5-10 % more CPU, a restore 0.78 at the same
 * CPU; with both cores busy they gained little and cost 10-40 % more CPU
 * (pass `workers: 0` on such a host).
 *
 * @example A flow's threads
 * ```ts
 * import { defaultThreads } from "./chunk_workers.ts";
 * console.log(defaultThreads(1 << 30)); // 2 on a 2-core host
 * console.log(defaultThreads(4 << 20)); // 0
 * ```
 */
export function defaultThreads(bytes: number): number {
  const cores = navigator.hardwareConcurrency;
  return cores >= 2 && bytes >= THREADS_MIN_BYTES ? cores : 0;
}

/**
 * The default of `workers` for a deep verify: one thread per core when
 * there are at least two, else 0 (the calling thread). Chosen by
 * measurement on a 2-core host (docs/benchmarks.md, "Worker threads vs the
 * calling thread"): a deep verify on threads was faster there (1.32x
 * local, 1.18x S3).
 *
 * @example
 * ```ts
 * import { defaultVerifyThreads } from "./chunk_workers.ts";
 * console.log(defaultVerifyThreads()); // 2 on a 2-core host
 * ```
 */
export function defaultVerifyThreads(): number {
  const cores = navigator.hardwareConcurrency;
  return cores >= 2 ? cores : 0;
}

/**
 * The URL a thread starts from for module `url`. `node:worker_threads` takes
 * only `file:` and `data:` URLs, while an operator may run us by `https:`
 * URL: such a module is imported from a one-line `data:` module.
 */
function threadEntry(url: string): URL {
  if (url.startsWith("file:") || url.startsWith("data:")) return new URL(url);
  return new URL(`data:text/javascript,${encodeURIComponent(`import ${JSON.stringify(url)};`)}`);
}

interface Pending {
  resolve: (reply: Record<string, unknown>) => void;
  reject: (error: Error) => void;
  thread: number;
  lease: ChunkWorkers;
}

/**
 * The threads themselves, shared by every flow of the process: started on
 * the first flow that asks for them, grown when a flow asks for more, and
 * kept between flows (a thread costs 0.13-0.17 CPU-s to start), but never
 * keeping the process alive: a thread is referenced (holds the event loop)
 * only while a call to it is waiting, and every thread is terminated once no
 * flow has used the pool for {@linkcode _internals.idleMs}.
 *
 * A thread that fails (an uncaught error, an exit, an unreadable message)
 * fails the whole pool: every waiting call rejects with that error, the
 * threads are terminated and the next flow starts a new pool.
 *
 * Each flow registers its codec spec (the repository's level and keys)
 * under a number; calls name it, and the threads forget it when the flow
 * ends, so no key outlives the flow that needed it.
 */
class ThreadPool {
  readonly #threads: NodeWorker[] = [];
  readonly #load: number[] = [];
  readonly #pending = new Map<number, Pending>();
  readonly #specs = new Map<number, ChunkCodecSpec>();
  #nextId = 1;
  #nextSpec = 1;
  #leases = 0;
  #idle: ReturnType<typeof setTimeout> | null = null;
  #failure: Error | null = null;

  /** The pool flows share, a new one when there is none or it failed. */
  static #shared: ThreadPool | null = null;
  static shared(): ThreadPool {
    const p = ThreadPool.#shared;
    if (p && p.#failure === null) return p;
    return ThreadPool.#shared = new ThreadPool();
  }

  /** Terminates the shared pool's threads now, if there is one. */
  static shutdown(): void {
    const p = ThreadPool.#shared;
    if (p) p.#fail(new Error("chunk workers shut down"));
  }

  /** Threads started, and flows using them. */
  get stats(): { threads: number; flows: number } {
    return { threads: this.#failure ? 0 : this.#threads.length, flows: this.#leases };
  }

  /** The shared pool, if started and not failed. */
  static get current(): ThreadPool | null {
    return ThreadPool.#shared;
  }

  /** A flow starts: at least `threads` threads, its codec registered. Returns the spec's number. */
  open(threads: number, spec: ChunkCodecSpec): number {
    if (this.#idle !== null) clearTimeout(this.#idle);
    this.#idle = null;
    const specId = this.#nextSpec++;
    this.#specs.set(specId, spec);
    for (const t of this.#threads) t.postMessage({ op: "init", specId, spec });
    try {
      while (this.#threads.length < threads) this.#spawn();
    } catch (e) {
      this.#fail(e as Error);
      throw e;
    }
    this.#leases++;
    return specId;
  }

  /** A flow ends: its calls still waiting fail with `error`, its codec is forgotten. */
  release(lease: ChunkWorkers, specId: number, error: Error): void {
    for (const p of this.#pending.values()) {
      if (p.lease !== lease) continue;
      // The thread still runs the step: its load stays until its reply, which is dropped.
      p.reject(error);
      p.resolve = p.reject = () => {};
    }
    this.#specs.delete(specId);
    if (this.#failure) return;
    for (const t of this.#threads) t.postMessage({ op: "drop", specId });
    if (--this.#leases === 0) {
      const idle = setTimeout(() => this.#fail(new Error("chunk workers idle")), _internals.idleMs);
      Deno.unrefTimer(idle as unknown as number);
      this.#idle = idle;
    }
  }

  /** Sends `message` to the least loaded of the first `threads` threads. */
  call(
    lease: ChunkWorkers,
    threads: number,
    message: Record<string, unknown>,
    move: readonly string[],
  ): Promise<Record<string, unknown>> {
    if (this.#failure) return Promise.reject(this.#failure);
    let wire: [Wire, ArrayBuffer[]];
    try {
      wire = toWire(message, move);
    } catch (e) {
      return Promise.reject(e);
    }
    let w = 0; // ties go to the lowest index
    for (let i = 1; i < Math.min(threads, this.#threads.length); i++) {
      if (this.#load[i] < this.#load[w]) w = i;
    }
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      // Referenced while a call waits, so the process lives to get its reply.
      if (this.#load[w]++ === 0) this.#threads[w].ref();
      this.#pending.set(id, { resolve, reject, thread: w, lease });
      wire[0].id = id;
      this.#threads[w].postMessage(...wire);
    });
  }

  #spawn(): void {
    const i = this.#threads.length;
    const t = new NodeWorker(threadEntry(_internals.workerUrl));
    t.unref();
    this.#threads.push(t);
    this.#load.push(0);
    t.on("message", (m: Wire) => this.#reply(fromWire(m) as { id: number; error?: string }));
    t.on("error", (e: Error) => this.#fail(new Error(`chunk worker ${i} failed: ${e.message}`)));
    t.on(
      "messageerror",
      () => this.#fail(new Error(`chunk worker ${i} sent an unreadable message`)),
    );
    t.on("exit", (code: number) => this.#fail(new Error(`chunk worker ${i} exited (${code})`)));
    for (const [specId, spec] of this.#specs) t.postMessage({ op: "init", specId, spec });
  }

  #reply(m: { id: number; error?: string }): void {
    const p = this.#pending.get(m.id);
    if (!p) return;
    this.#pending.delete(m.id);
    if (--this.#load[p.thread] === 0) this.#threads[p.thread].unref();
    if (m.error !== undefined) p.reject(new ChunkStepError(m.error));
    else p.resolve(m as Record<string, unknown>);
  }

  #fail(error: Error): void {
    if (this.#failure) return;
    this.#failure = error;
    if (this.#idle !== null) clearTimeout(this.#idle);
    if (ThreadPool.#shared === this) ThreadPool.#shared = null;
    for (const t of this.#threads) {
      t.removeAllListeners();
      t.on("error", () => {}); // a late error of a dying thread is this failure's
      t.terminate();
    }
    for (const p of this.#pending.values()) p.reject(error);
    this.#pending.clear();
    this.#specs.clear();
  }
}

/**
 * Terminates the chunk worker threads the process's flows share, now
 * rather than after they idle; the next flow that asks for threads starts
 * new ones. Calls of flows still running fail ("chunk workers shut down"),
 * so call it between flows: a program that wants its memory back at once,
 * or a test that changes {@linkcode _internals}.
 *
 * @example
 * ```ts
 * import { shutdownChunkWorkers } from "./chunk_workers.ts";
 * shutdownChunkWorkers();
 * ```
 */
export function shutdownChunkWorkers(): void {
  ThreadPool.shutdown();
}

/** Threads the shared pool holds now (0 before the first flow and after shutdown), and flows using it. */
export function chunkWorkerStats(): { threads: number; flows: number } {
  return ThreadPool.current?.stats ?? { threads: 0, flows: 0 };
}

/**
 * One flow's use of the shared threads ({@linkcode ChunkWorkers.start});
 * closing it ends the flow's use, not the threads.
 */
export class ChunkWorkers implements Disposable {
  readonly #pool: ThreadPool;
  readonly #threads: number;
  readonly #specId: number;
  #closed: Error | null = null;

  private constructor(pool: ThreadPool, threads: number, specId: number) {
    this.#pool = pool;
    this.#threads = threads;
    this.#specId = specId;
  }

  /**
   * Uses `threads` threads (at least 1) of the process's pool, running the
   * codec `spec` describes; starts the threads the pool lacks. They load in
   * the background; the first calls wait for them.
   */
  static start(threads: number, spec: ChunkCodecSpec): ChunkWorkers {
    const n = Math.max(1, threads);
    const pool = ThreadPool.shared();
    return new ChunkWorkers(pool, n, pool.open(n, spec));
  }

  /** Threads this flow uses. */
  get size(): number {
    return this.#threads;
  }

  /**
   * Whether every byte of `data` is zero, and if not its name. `data` must
   * be a view of a buffer the caller owns whole: the buffer moves to the
   * thread and comes back in the result.
   */
  async identify(data: Uint8Array): Promise<Identified> {
    const r = await this.#call({ op: "name", data }, ["data"]);
    return { data: r.data as Uint8Array, name: r.zero ? null : r.name as Uint8Array };
  }

  /**
   * {@linkcode ChunkWorkers.identify} and, unless every byte is zero,
   * {@linkcode ChunkWorkers.encode} in one trip to a thread: for a chunk
   * that is probably new, since each trip costs thread wake-ups. When the
   * chunk turns out to be stored already, the encoding is thrown away.
   */
  async identifyEncode(data: Uint8Array, out: Uint8Array): Promise<Identified & Encoded> {
    const r = await this.#call({ op: "nameEncode", data, out }, ["data", "out"]);
    return {
      data: r.data as Uint8Array,
      name: r.zero ? null : r.name as Uint8Array,
      out: r.out as Uint8Array,
      length: r.length as number,
    };
  }

  /**
   * The object to store for `data`, named `name`, written into the start of
   * `out` (at least the codec's `maxStoredSize` of `data.length` bytes).
   * Both buffers move as in `identify` and come back in the result.
   */
  async encode(data: Uint8Array, name: Uint8Array, out: Uint8Array): Promise<Encoded> {
    const r = await this.#call({ op: "encode", data, name, out }, ["data", "out"]);
    return { data: r.data as Uint8Array, out: r.out as Uint8Array, length: r.length as number };
  }

  /**
   * The chunk's bytes from stored object `stored` named `hex`, after every
   * check, written into the start of `out` (at least `maxLength` bytes, a
   * view of a buffer the caller owns whole, which moves and comes back).
   * `stored` moves too when `storedOwned` (the caller owns its whole buffer,
   * even where the view covers only part of it), else a copy goes.
   */
  async decode(
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength: number | undefined,
    out: Uint8Array,
    storedOwned: boolean = ownsBuffer(stored),
  ): Promise<Decoded> {
    const r = await this.#call(
      { op: "decode", stored, hex, maxLength, exactLength, out },
      storedOwned ? ["stored", "out"] : ["out"],
    );
    return {
      data: (r.out as Uint8Array).subarray(0, r.length as number),
      stored: storedOwned ? r.stored as Uint8Array : stored,
    };
  }

  /**
   * Checks stored object `stored` named `hex`: every check of a decode
   * (`deep`), or only the frame and CRC-32 or tag (`scrub`). `stored` moves
   * as in {@linkcode ChunkWorkers.decode} and is handed back.
   */
  async check(
    mode: "deep" | "scrub",
    stored: Uint8Array,
    hex: string,
    maxLength: number,
    exactLength?: number,
    storedOwned: boolean = ownsBuffer(stored),
  ): Promise<Uint8Array> {
    const r = await this.#call(
      { op: mode === "deep" ? "check" : "scrub", stored, hex, maxLength, exactLength },
      storedOwned ? ["stored"] : [],
    );
    return storedOwned ? r.stored as Uint8Array : stored;
  }

  /** Ends this flow's use of the threads; its calls still waiting fail. Idempotent. */
  close(): void {
    if (this.#closed) return;
    this.#closed = new Error("chunk workers closed");
    this.#pool.release(this, this.#specId, this.#closed);
  }

  /** Same as {@linkcode ChunkWorkers.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  #call(
    message: Record<string, unknown>,
    move: readonly string[],
  ): Promise<Record<string, unknown>> {
    if (this.#closed) return Promise.reject(this.#closed);
    return this.#pool.call(this, this.#threads, { ...message, specId: this.#specId }, move);
  }
}

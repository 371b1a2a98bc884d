/**
 * CPU floors: the least CPU time a backup, restore or verify of some bytes
 * needs, spread over every core and measured on this machine in the same run
 * as the flow it bounds. The bytes are in memory (a SharedArrayBuffer), each
 * thread takes the next job from a shared cursor and does only that job's
 * hashing, compression or decompression: no reads, no writes, no framing, no
 * scheduling between stages. A flow at 1.0 of its floor would be CPU-bound
 * with nothing else on its cores.
 *
 * @example The floor of hashing and compressing 64 MiB
 * ```ts ignore
 * await using floor = await CpuFloor.start(2);
 * const data = shared(new Uint8Array(64 << 20));
 * const jobs = [...Array(16).keys()].map((i) => ({ kind: JobKind.Store, offset: i << 22, length: 1 << 22 }));
 * console.log(await floor.run(data, jobs), "s");
 * ```
 *
 * @module
 */

/** What a floor job does with its bytes. */
export const JobKind = {
  /** Test an all-zero chunk for zeros (memcmp). */
  Zero: 0,
  /** SHA-256 of a chunk the store already has. */
  Hash: 1,
  /** SHA-256 and zstd of a new chunk. */
  Store: 2,
  /** CRC-32, zstd decompression and SHA-256 of a stored zstd payload. */
  Decode: 3,
  /** CRC-32 and SHA-256 of a stored raw payload. */
  DecodeRaw: 4,
} as const;
/** One of {@linkcode JobKind}. */
export type JobKind = typeof JobKind[keyof typeof JobKind];

/** A job of a floor: a kind and a range of the shared bytes. */
export interface FloorJob {
  /** What to do. */
  kind: JobKind;
  /** First byte in the shared data. */
  offset: number;
  /** Bytes. */
  length: number;
  /** For decode jobs: the decompressed length. */
  outLength?: number;
}

/** Numbers per job in the shared job list. */
export const JOB_FIELDS = 4;

/** A copy of `bytes` in a SharedArrayBuffer, which the floor's threads read in place. */
export function shared(bytes: Uint8Array): Uint8Array {
  const out = new Uint8Array(new SharedArrayBuffer(bytes.length));
  out.set(bytes);
  return out;
}

/** A pool of threads that runs floor jobs; terminate it with `await using` or `close()`. */
export class CpuFloor implements AsyncDisposable {
  readonly #workers: Worker[];
  readonly #level: number;

  private constructor(workers: Worker[], level: number) {
    this.#workers = workers;
    this.#level = level;
  }

  /** Starts `threads` threads (zstd at `level`) and waits until each has run once. */
  static async start(threads: number, level = 1): Promise<CpuFloor> {
    const url = new URL("./_floor_worker.ts", import.meta.url).href;
    const workers = Array.from({ length: threads }, () => new Worker(url, { type: "module" }));
    const floor = new CpuFloor(workers, level);
    // Warm-up: module load and JIT are not part of any floor.
    const warm = shared(new Uint8Array(1 << 20).map((_, i) => i * 31));
    await floor.run(warm, [
      { kind: JobKind.Store, offset: 0, length: warm.length },
      { kind: JobKind.Store, offset: 0, length: warm.length },
      { kind: JobKind.Zero, offset: 0, length: 0 },
    ]);
    return floor;
  }

  /** Seconds until every thread has finished `jobs` over `data` (made by {@linkcode shared}). */
  async run(data: Uint8Array, jobs: FloorJob[]): Promise<number> {
    if (!(data.buffer instanceof SharedArrayBuffer)) throw new Error("floor data must be shared");
    const list = new Float64Array(new SharedArrayBuffer(jobs.length * JOB_FIELDS * 8));
    jobs.forEach((j, i) =>
      list.set([j.kind, data.byteOffset + j.offset, j.length, j.outLength ?? 0], i * JOB_FIELDS)
    );
    const next = new SharedArrayBuffer(4);
    const t0 = performance.now();
    await Promise.all(this.#workers.map((w) =>
      new Promise<void>((resolve, reject) => {
        w.onmessage = () => resolve();
        w.onerror = (e) => {
          e.preventDefault();
          reject(new Error(`floor thread: ${e.message}`));
        };
        w.postMessage({ data: data.buffer, jobs: list.buffer, next, level: this.#level });
      })
    ));
    return (performance.now() - t0) / 1000;
  }

  /** Terminates the threads. */
  close(): void {
    for (const w of this.#workers) w.terminate();
  }

  /** Same as {@linkcode CpuFloor.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}

/**
 * Bounded concurrency for the flows (backup, restore, verify): at most N jobs
 * in flight, the first failure stops new jobs, and every started job is
 * waited for before the failure is thrown, so no job outlives its flow (and
 * the repository lock).
 *
 * @module
 */

/** The default number of jobs in flight: the CPU count, at least 2. */
export function defaultConcurrency(): number {
  return Math.max(2, navigator.hardwareConcurrency);
}

/** `concurrency` if given (at least 1), else {@linkcode defaultConcurrency}. */
export function concurrencyOf(concurrency: number | undefined): number {
  return Math.max(1, concurrency ?? defaultConcurrency());
}

/**
 * A set of running jobs of bounded size. {@linkcode BoundedPool.run} waits
 * for a free slot; after a failure it starts nothing more.
 *
 * @example
 * ```ts
 * import { BoundedPool } from "./_pool.ts";
 * const pool = new BoundedPool(2);
 * for (const n of [1, 2, 3]) if (!(await pool.run(async () => console.log(n)))) break;
 * await pool.drain();
 * pool.throwIfFailed();
 * ```
 */
export class BoundedPool {
  readonly #concurrency: number;
  readonly #inFlight = new Set<Promise<void>>();
  #failure: { error: unknown } | null = null;

  /** A pool of at most `concurrency` (at least 1) jobs. */
  constructor(concurrency: number) {
    this.#concurrency = Math.max(1, concurrency);
  }

  /** True once a job (or {@linkcode BoundedPool.fail}) failed. */
  get failed(): boolean {
    return this.#failure !== null;
  }

  /** Record a failure from outside a job (the first one wins). */
  fail(error: unknown): void {
    this.#failure ??= { error };
  }

  /**
   * Wait for a free slot, then start `job`. Returns false, starting nothing,
   * once any job has failed.
   */
  async run(job: () => Promise<void>): Promise<boolean> {
    while (this.#inFlight.size >= this.#concurrency) await Promise.race(this.#inFlight);
    if (this.#failure) return false;
    const p: Promise<void> = job()
      .catch((e) => this.fail(e))
      .finally(() => this.#inFlight.delete(p));
    this.#inFlight.add(p);
    return true;
  }

  /** Wait for every started job to end. Never throws. */
  async drain(): Promise<void> {
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
  }

  /** Throw the first failure, if any. */
  throwIfFailed(): void {
    if (this.#failure) throw this.#failure.error;
  }
}

/**
 * Run `fn` on each item with at most `concurrency` in flight; stop starting
 * new ones at the first failure, wait for the started ones, then throw it.
 */
export async function runBounded<T>(
  items: Iterable<T>,
  concurrency: number,
  fn: (item: T) => Promise<void>,
): Promise<void> {
  const pool = new BoundedPool(concurrency);
  for (const item of items) if (!(await pool.run(() => fn(item)))) break;
  await pool.drain();
  pool.throwIfFailed();
}

/** 0, 1, ..., n - 1. */
export function* range(n: number): Generator<number> {
  for (let i = 0; i < n; i++) yield i;
}

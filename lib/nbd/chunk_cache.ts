/**
 * A bounded least-recently-used cache of decoded chunks, keyed by digest,
 * that also joins concurrent loads of the same chunk: many clients reading
 * one chunk at once cost one fetch and one decode. Failed loads are not
 * kept, so the next read tries again.
 *
 * @module
 */

/** Counters of a {@linkcode ChunkCache}. */
export interface ChunkCacheStats {
  /** Lookups answered from memory (a finished or an in-flight load). */
  hits: number;
  /** Lookups that started a load. */
  misses: number;
  /** Entries dropped to stay within the bound. */
  evictions: number;
}

/**
 * An LRU map from key to a loaded value, holding at most `capacity` values.
 *
 * @example
 * ```ts
 * import { ChunkCache } from "./chunk_cache.ts";
 * const cache = new ChunkCache<Uint8Array>(2);
 * const a = await cache.get("a", () => Promise.resolve(new Uint8Array([1])));
 * await cache.get("a", () => Promise.reject(new Error("not called: cached")));
 * console.log(a[0], cache.stats.hits); // 1 1
 * ```
 */
export class ChunkCache<T> {
  readonly #capacity: number;
  // A Map iterates in insertion order: re-inserting on use keeps the least
  // recently used entry first.
  readonly #done = new Map<string, T>();
  readonly #loading = new Map<string, Promise<T>>();
  /** Hit, miss and eviction counts. */
  readonly stats: ChunkCacheStats = { hits: 0, misses: 0, evictions: 0 };

  /** A cache of at most `capacity` (at least 1) values. */
  constructor(capacity: number) {
    this.#capacity = Math.max(1, Math.floor(capacity));
  }

  /** Values held (finished loads). */
  get size(): number {
    return this.#done.size;
  }

  /** Whether `key` is held or being loaded. */
  has(key: string): boolean {
    return this.#done.has(key) || this.#loading.has(key);
  }

  /** The value of `key`: from memory, from a load in flight, or from `load()`. */
  get(key: string, load: () => Promise<T>): Promise<T> {
    const hit = this.#done.get(key);
    if (hit !== undefined) {
      this.#done.delete(key);
      this.#done.set(key, hit);
      this.stats.hits++;
      return Promise.resolve(hit);
    }
    const pending = this.#loading.get(key);
    if (pending) {
      this.stats.hits++;
      return pending;
    }
    this.stats.misses++;
    const p = load().then((value) => {
      this.#loading.delete(key);
      this.#done.set(key, value);
      while (this.#done.size > this.#capacity) {
        this.#done.delete(this.#done.keys().next().value!);
        this.stats.evictions++;
      }
      return value;
    }, (e) => {
      this.#loading.delete(key);
      throw e;
    });
    this.#loading.set(key, p);
    return p;
  }

  /** Drop every value (loads in flight finish and are kept). */
  clear(): void {
    this.#done.clear();
  }
}

/**
 * The storage under a repository: whole objects by name, as a directory or
 * an object store keeps them. Names are relative and use `/`
 * (`config.json`, `chunks/ab/<64 hex>`, `backups/<id>.index`,
 * `runs/<id>.json`). Two implementations: {@linkcode LocalBackend} (a
 * directory, crash-safe through temp file, `fsync` and rename) and
 * `S3Backend` (`s3://bucket/prefix`).
 *
 * Every flow reads and writes through this interface, except the writer
 * lock, which each backend provides in its own way (`lock.ts` for a
 * directory, a lease object for S3).
 *
 * @module
 */

/** One stored object as a listing shows it. */
export interface StoredObject {
  /** Name relative to the repository root. */
  name: string;
  /** Size in bytes, when the listing gives it for free (S3 does, a directory listing does not). */
  size?: number;
  /** Last modification, milliseconds since the epoch, when the listing gives it. */
  mtimeMs?: number;
  /** The store's ETag (S3: the MD5 of a single-PUT object), when the listing gives it. */
  etag?: string;
}

/** Options of {@linkcode Backend.put}. */
export interface PutOptions {
  /**
   * The object is durable when `put` returns, but its directory entry may be
   * made durable later, at {@linkcode Backend.flush} (chunks: one directory
   * `fsync` per fan-out directory and run instead of one per chunk). @default false
   */
  deferSync?: boolean;
}

/**
 * A put whose bytes are written (and durable) but not yet visible: its
 * {@linkcode PreparedPut.commit} makes the object appear, whole. Lets a
 * backup write its index and manifest while its last chunks are still being
 * stored, and publish them in order afterwards.
 */
export interface PreparedPut {
  /** Makes the object visible under its name, durably. */
  commit(): Promise<void>;
  /** Drops the prepared bytes (best effort); the name is untouched. */
  discard(): Promise<void>;
}

/** The object store a repository lives in. */
export interface Backend {
  /** `"local"` or `"s3"`. */
  readonly kind: "local" | "s3";
  /** Where the repository is: a directory path or `s3://bucket/prefix`. */
  readonly location: string;
  /** Requests worth having in flight at once (chunk uploads, downloads, checks). */
  readonly parallelism: number;
  /** How an object is named in messages: its path, or its `s3://` URL. */
  display(name: string): string;
  /**
   * The whole object, or `null` if it does not exist. An object larger than
   * `max` bytes is a `CorruptError`, found before more than `max + 1` bytes
   * are read. With `into` the bytes may land in it (a directory reads them
   * there when they fit; S3 returns its own buffer): the result is then a
   * view of `into`.
   */
  get(name: string, max: number, into?: Uint8Array): Promise<Uint8Array | null>;
  /** Store `data` as `name`, replacing it whole: a reader sees the old or the new object. */
  put(name: string, data: Uint8Array, options?: PutOptions): Promise<void>;
  /**
   * The first half of a {@linkcode Backend.put}: `data` durable but not
   * visible until the returned {@linkcode PreparedPut.commit}. A backend
   * without it (an object store, where a put is atomic) is given a prepared
   * put that does the whole put at commit.
   */
  prepare?(name: string, data: Uint8Array): Promise<PreparedPut>;
  /** Remove `name`; no error if it is already gone. */
  delete(name: string): Promise<void>;
  /**
   * Remove many objects; returns those the store refused, with why (an
   * object under Object Lock retention, for instance).
   */
  deleteMany(names: string[]): Promise<{ name: string; reason: string }[]>;
  /** Every object under `prefix` (`"chunks/"`, `"backups/"`, `"runs/"` or `""` for the top). */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Size and modification time of `name`, or `null` if it does not exist. */
  stat(name: string): Promise<{ size: number; mtimeMs: number } | null>;
  /** Make the deferred puts durable (a directory `fsync` each); nothing for S3. */
  flush(): Promise<void>;
}

/** The object name of chunk `hex`: `chunks/<first 2 hex>/<hex>`. */
export function chunkName(hex: string): string {
  return `chunks/${hex.slice(0, 2)}/${hex}`;
}
/** The object name of the index of backup `id`. */
export function indexName(id: string): string {
  return `backups/${id}.index`;
}
/** The object name of the manifest of backup `id`. */
export function manifestName(id: string): string {
  return `backups/${id}.json`;
}
/** The object name of the failed-run record of run `id`. */
export function runRecordName(id: string): string {
  return `runs/${id}.json`;
}

/** Suffix of the marker a backup keeps in `runs/` while it runs (`runs/<id>.running`). */
export const RUNNING_SUFFIX = ".running";
/** A marker older than this is left by a backup that died (48 hours). */
export const RUNNING_MAX_AGE_MS = 48 * 3_600_000;

/** The object name of the marker of running backup `id`. */
export function runningName(id: string): string {
  return `runs/${id}${RUNNING_SUFFIX}`;
}

/** `backend.prepare(name, data)`, or a prepared put that puts at commit where there is none. */
export function preparePut(backend: Backend, name: string, data: Uint8Array): Promise<PreparedPut> {
  if (backend.prepare) return backend.prepare(name, data);
  return Promise.resolve({
    commit: () => backend.put(name, data),
    discard: () => Promise.resolve(),
  });
}

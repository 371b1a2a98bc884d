/**
 * The backup repository: its layout over a storage {@linkcode Backend} (a
 * local directory, or `s3://bucket/prefix`), and the checked reads and
 * writes of config, manifests, indexes and chunks. The formats are in
 * `config.ts`, `chunk.ts`, `index_file.ts` and `manifest.ts`, the writer
 * lock in `lock.ts` (directory) and `storage/s3_lock.ts` (S3). Layout and
 * rules: docs/repository-format.md.
 *
 * @module
 */

import { join, relative } from "node:path";
import { decodeChunk, maxChunkFileSize } from "./chunk.ts";
import { encodeConfig, parseConfig, type RepoConfig } from "./config.ts";
import { CorruptError, ioError, RepoError } from "./errors.ts";
import {
  DEFAULT_CHUNK_SIZE,
  FORMAT_VERSION,
  isBackupId,
  isDigestHex,
  isValidChunkSize,
  MAX_CHUNK_COUNT,
  MAX_JSON_SIZE,
  randomHex,
  sha256,
  TEMP_PREFIX,
  toHex,
} from "./format.ts";
import { DenoFs, type RepoFs } from "./fs.ts";
import {
  type Backend,
  chunkName,
  indexName,
  manifestName,
  runRecordName,
} from "./storage/backend.ts";
import { LocalBackend, readBounded } from "./storage/local.ts";
import { S3Backend, type S3BackendOptions } from "./storage/s3.ts";
import { acquireS3Lock, s3LockHolder } from "./storage/s3_lock.ts";
import { isS3Url } from "./s3/config.ts";
import { type BackupIndex, decodeIndex, indexFileSize } from "./index_file.ts";
import {
  acquireLock,
  type LockHolder,
  lockHolder,
  type LockOptions,
  type RepoLock,
} from "./lock.ts";
import { encodeManifest, type Manifest, parseManifest } from "./manifest.ts";
import type { StoredObject } from "./storage/backend.ts";

export { readBounded, TEMP_PREFIX };

/** Options of {@linkcode Repository.init}. */
export interface InitOptions {
  /** Chunk size in bytes: a power of two from 4 KiB to 64 MiB. @default 4194304 */
  chunkSize?: number;
  /** zstd compression level, 1..19. @default 1 */
  compressionLevel?: number;
  /** File-system layer of a local repository (tests inject faults here). @default new DenoFs() */
  fs?: RepoFs;
  /** S3 settings and client options of an `s3://` repository. @default from the environment */
  s3?: S3BackendOptions;
  /** S3 only: create the bucket with Object Lock and keep every object this many days. */
  objectLockDays?: number;
}

/** Options of {@linkcode Repository.open}. */
export interface OpenOptions {
  /** File-system layer of a local repository (tests inject faults here). @default new DenoFs() */
  fs?: RepoFs;
  /** S3 settings and client options of an `s3://` repository. @default from the environment */
  s3?: S3BackendOptions;
  /** A lock older than this many milliseconds is stale. @default 3600000 */
  lockStaleMs?: number;
}

/** The backend of `location`: S3 for `s3://...`, else a local directory. */
export function backendFor(
  location: string,
  options: { fs?: RepoFs; s3?: S3BackendOptions } = {},
): Backend {
  if (!isS3Url(location)) return new LocalBackend(location, options.fs ?? new DenoFs());
  try {
    return S3Backend.connect(location, options.s3);
  } catch (e) {
    // A bad s3:// name or missing credentials: a usage problem, said as one.
    throw new RepoError("INVALID", (e as Error).message, { cause: e });
  }
}

/**
 * A backup repository in a local directory.
 *
 * @example Create a repository with 1 MiB chunks and open it again
 * ```ts ignore
 * import { Repository } from "./repository.ts";
 * await Repository.init("/backup/repo", { chunkSize: 1 << 20 });
 * const repo = await Repository.open("/backup/repo");
 * console.log(repo.config.chunkSize);
 * ```
 */
export class Repository {
  /** Where the repository is: its directory, or `s3://bucket/prefix`. */
  readonly path: string;
  /** Parsed `config.json`. */
  readonly config: RepoConfig;
  /** The storage every repository object goes through. */
  readonly backend: Backend;
  /** Age after which a lock is stale, in milliseconds. */
  readonly lockStaleMs: number;

  private constructor(backend: Backend, config: RepoConfig, lockStaleMs: number) {
    this.path = backend.location;
    this.backend = backend;
    this.config = config;
    this.lockStaleMs = lockStaleMs;
  }

  /**
   * The file-system layer of a local repository (the directory lock and the
   * crash tests use it). Throws for an S3 repository, which has none.
   */
  get fs(): RepoFs {
    if (this.backend instanceof LocalBackend) return this.backend.fs;
    throw new RepoError("INVALID", `${this.path} is not a local directory`);
  }

  /**
   * Create a repository in `path`: an empty or missing directory, or an
   * `s3://bucket/prefix` with no repository in it (the bucket is created if
   * missing).
   */
  static async init(path: string, options: InitOptions = {}): Promise<Repository> {
    const backend = backendFor(path, options);
    const chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
    if (!isValidChunkSize(chunkSize)) {
      throw new RepoError(
        "INVALID",
        `Chunk size ${chunkSize} must be a power of two from 4096 to 67108864`,
      );
    }
    const level = options.compressionLevel ?? 1;
    if (!Number.isInteger(level) || level < 1 || level > 19) {
      throw new RepoError("INVALID", `Compression level ${level} must be 1..19`);
    }
    const lockDays = options.objectLockDays ?? 0;
    if (!Number.isInteger(lockDays) || lockDays < 0 || lockDays > 36500) {
      throw new RepoError("INVALID", `Object Lock days ${lockDays} must be 0..36500`);
    }
    if (lockDays > 0 && !(backend instanceof S3Backend)) {
      throw new RepoError("INVALID", "Object Lock needs an s3:// repository");
    }
    try {
      if (backend instanceof LocalBackend) {
        const fs = backend.fs;
        await fs.mkdir(path);
        const existing = (await fs.readDir(path)).filter((n) => !n.startsWith("."));
        if (existing.length > 0) {
          throw new RepoError("INVALID", `Directory ${path} is not empty`, { path });
        }
        for (const sub of ["chunks", "backups", "runs"]) await fs.mkdir(join(path, sub));
        await fs.syncDir(path);
      } else if (backend instanceof S3Backend) {
        if (!(await backend.client.bucketExists())) {
          await backend.client.createBucket({ objectLock: lockDays > 0 });
        } else if (lockDays > 0 && !(await backend.client.objectLockEnabled())) {
          throw new RepoError(
            "INVALID",
            `Bucket ${backend.client.bucket} has no Object Lock; S3 can turn it on only when a ` +
              "bucket is created: use a new bucket",
          );
        }
        if ((await backend.stat("config.json")) !== null) {
          throw new RepoError("INVALID", `There is a repository at ${path} already`, { path });
        }
        backend.objectLockDays = lockDays;
      }
      const config: RepoConfig = {
        format: "blksnap-repository",
        version: FORMAT_VERSION,
        id: randomHex(16),
        chunkSize,
        compression: { algorithm: "zstd", level },
        created: new Date().toISOString(),
        ...(lockDays > 0 ? { objectLockDays: lockDays } : {}),
      };
      const repo = new Repository(backend, config, 3_600_000);
      await backend.put("config.json", encodeConfig(config));
      return repo;
    } catch (e) {
      throw ioError("init repository", path, e);
    }
  }

  /** Open the repository in `path` (a directory or `s3://bucket/prefix`), checking its config. */
  static async open(path: string, options: OpenOptions = {}): Promise<Repository> {
    const backend = backendFor(path, options);
    const file = backend.display("config.json");
    const bytes = await backend.get("config.json", MAX_JSON_SIZE);
    if (bytes === null) {
      throw new RepoError("NOT_FOUND", `No repository at ${path} (missing config.json)`, {
        path: file,
      });
    }
    const config = parseConfig(bytes, file);
    if (backend instanceof S3Backend) backend.objectLockDays = config.objectLockDays ?? 0;
    return new Repository(backend, config, options.lockStaleMs ?? 3_600_000);
  }

  /** Path (or URL) of the lock. */
  get lockPath(): string {
    return this.backend.display("lock");
  }
  /** Path (or URL) of the chunk store. */
  get chunksDir(): string {
    return this.backend.display("chunks");
  }
  /** Path (or URL) of the indexes and manifests. */
  get backupsDir(): string {
    return this.backend.display("backups");
  }
  /** Path (or URL) of the failed-run records. */
  get runsDir(): string {
    return this.backend.display("runs");
  }

  /** Path (or URL) of the chunk named by hex digest `hex`: `chunks/ab/abcdef...`. */
  chunkPath(hex: string): string {
    return this.backend.display(chunkName(hex));
  }
  /** Path (or URL) of the index of backup `id`. */
  indexPath(id: string): string {
    return this.backend.display(indexName(id));
  }
  /** Path (or URL) of the manifest of backup `id`. */
  manifestPath(id: string): string {
    return this.backend.display(manifestName(id));
  }
  /** Path (or URL) of the failed-run record of run `id`. */
  runRecordPath(id: string): string {
    return this.backend.display(runRecordName(id));
  }

  // ---------------------------------------------------------------- writes

  /**
   * Write `data` to the file `path` of a local repository crash-safely: a
   * temp file in the same directory, `fsync`, rename over `path`, `fsync` of
   * the directory (the directory lock uses it). Objects are written with
   * {@linkcode Backend.put}.
   */
  async writeAtomic(path: string, data: Uint8Array): Promise<void> {
    const local = this.backend as LocalBackend;
    await local.put(relative(local.location, path), data);
  }

  /** True if the chunk `hex` is stored (a stat or a HEAD: backups decide from the parent's index first). */
  async hasChunk(hex: string): Promise<boolean> {
    return (await this.backend.stat(chunkName(hex))) !== null;
  }

  /**
   * Store a chunk file (see `encodeChunk` in chunk.ts) under `hex`. The file is durable when this
   * returns; its directory entry becomes durable at {@linkcode Repository.syncChunkDirs}.
   */
  async putChunk(hex: string, file: Uint8Array): Promise<void> {
    await this.backend.put(chunkName(hex), file, { deferSync: true });
  }

  /** Make every chunk stored since the last call durable (directory `fsync`s; nothing on S3). */
  async syncChunkDirs(): Promise<void> {
    await this.backend.flush();
  }

  /** Write the index of backup `id` (before its manifest). */
  async writeIndex(id: string, bytes: Uint8Array): Promise<void> {
    await this.backend.put(indexName(id), bytes);
  }

  /** Write a failed-run record. */
  async writeRunRecord(id: string, bytes: Uint8Array): Promise<void> {
    await this.backend.put(runRecordName(id), bytes);
  }

  /** Write a manifest crash-safely (after its index). */
  async writeManifest(manifest: Manifest): Promise<void> {
    await this.backend.put(manifestName(manifest.id), encodeManifest(manifest));
  }

  /** Remove backup `id`: manifest first (the backup disappears), then its index. */
  async removeBackup(id: string): Promise<void> {
    try {
      await this.backend.delete(manifestName(id));
      await this.backend.flush();
      await this.backend.delete(indexName(id));
    } catch (e) {
      throw ioError("remove backup", id, e);
    }
  }

  /** Names of every object under `prefix` (`backups/`, `runs/`, `chunks/`), with sizes where free. */
  list(prefix: string): AsyncIterable<StoredObject> {
    return this.backend.list(prefix);
  }

  // ---------------------------------------------------------------- reads

  /** Ids of backups that have a manifest, oldest first. */
  async listBackupIds(): Promise<string[]> {
    const names: string[] = [];
    for await (const o of this.backend.list("backups/")) names.push(o.name.slice(8));
    return backupIdsIn(names);
  }

  /** Read and check the manifest of backup `id`. */
  async readManifest(id: string): Promise<Manifest> {
    if (!isBackupId(id)) throw new RepoError("INVALID", `Not a backup id: ${JSON.stringify(id)}`);
    const path = this.manifestPath(id);
    const bytes = await this.backend.get(manifestName(id), MAX_JSON_SIZE);
    if (bytes === null) throw new RepoError("NOT_FOUND", `Backup ${id} not found`, { path });
    const m = parseManifest(bytes, path);
    if (m.id !== id) throw new CorruptError(path, `manifest names backup ${m.id}`);
    return m;
  }

  /**
   * Read and check the index of `manifest`'s backup: its own checksum, the
   * SHA-256 the manifest records, and chunk size and capacity against the
   * manifest. An S3 repository keeps a checked copy in the local cache
   * ({@linkcode cacheDir}) and reads that first unless `fresh` (verify reads
   * the store itself).
   */
  async readIndex(manifest: Manifest, options: { fresh?: boolean } = {}): Promise<BackupIndex> {
    const path = this.indexPath(manifest.id);
    if (manifest.chunkCount > MAX_CHUNK_COUNT) throw new CorruptError(path, "chunk count too big");
    const bytes = (options.fresh ? null : await readCachedIndex(this, manifest)) ??
      await this.backend.get(indexName(manifest.id), indexFileSize(manifest.chunkCount));
    if (bytes === null) {
      throw new RepoError("NOT_FOUND", `Index of backup ${manifest.id} is missing`, { path });
    }
    const index = decodeIndex(bytes, path);
    if (toHex(sha256(bytes)) !== manifest.indexSha256) {
      throw new CorruptError(path, `index does not match manifest of backup ${manifest.id}`);
    }
    if (index.chunkSize !== manifest.chunkSize || index.capacity !== manifest.device.capacity) {
      throw new CorruptError(path, "index geometry differs from its manifest");
    }
    await cacheIndex(this, manifest.id, bytes);
    return index;
  }

  /**
   * Read chunk `hex`: check the file header, its length and the payload's
   * CRC-32, decompress (output bounded by `maxLength`), and check the SHA-256
   * and, when given, the length. Throws `BAD_CHUNK` naming it.
   */
  async readChunk(hex: string, maxLength: number, exactLength?: number): Promise<Uint8Array> {
    if (!isDigestHex(hex)) throw new RepoError("INVALID", `Not a chunk digest: ${hex}`);
    const path = this.chunkPath(hex);
    let file: Uint8Array | null;
    try {
      file = await this.backend.get(chunkName(hex), maxChunkFileSize(maxLength));
    } catch (e) {
      if (e instanceof CorruptError) throw badChunk(hex, path, "is larger than any valid chunk", e);
      throw e;
    }
    if (file === null) throw badChunk(hex, path, "missing");
    try {
      return decodeChunk(file, hex, maxLength, exactLength);
    } catch (e) {
      throw badChunk(hex, path, (e as Error).message, e);
    }
  }

  // ---------------------------------------------------------------- lock

  /**
   * Take the writer lock (`lock` file: pid, host, time, operation). A lock
   * whose pid is dead on this host, or older than `lockStaleMs`, is stale and
   * removed; otherwise waits up to `waitMs`, then throws `LOCKED`. The holder
   * refreshes the time every `lockStaleMs / 3`. See lock.ts.
   */
  lock(operation: string, options: LockOptions = {}): Promise<RepoLock> {
    if (this.backend instanceof S3Backend) return acquireS3Lock(this, operation, options);
    return acquireLock(this, operation, options);
  }

  /** Who holds the lock, and whether it is stale. */
  lockHolder(): Promise<LockHolder> {
    if (this.backend instanceof S3Backend) return s3LockHolder(this);
    return lockHolder(this);
  }
}

/** The backup ids among the names of `backups/` (files `<id>.json`), sorted oldest first. */
export function backupIdsIn(names: readonly string[]): string[] {
  return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter(isBackupId)
    .sort();
}

function badChunk(hex: string, path: string, problem: string, cause?: unknown): RepoError {
  return new RepoError("BAD_CHUNK", `Chunk ${hex} ${problem}`, { path, cause });
}

/**
 * Where S3 repositories keep copies of their indexes: `$BLKSNAP_CACHE`, else
 * `$XDG_CACHE_HOME/blksnap`, else `~/.cache/blksnap`; `null` when none can be
 * told (no `--allow-env`). An index never changes once written, and every
 * read checks it against its manifest's SHA-256, so a stale or damaged copy
 * is never used: it is fetched again.
 */
export function cacheDir(): string | null {
  try {
    const explicit = Deno.env.get("BLKSNAP_CACHE");
    if (explicit) return explicit;
    const xdg = Deno.env.get("XDG_CACHE_HOME");
    if (xdg) return join(xdg, "blksnap");
    const home = Deno.env.get("HOME");
    return home ? join(home, ".cache", "blksnap") : null;
  } catch {
    return null;
  }
}

function cachePath(repo: Repository, id: string): string | null {
  const dir = repo.backend.kind === "s3" ? cacheDir() : null;
  return dir && join(dir, repo.config.id, `${id}.index`);
}

async function readCachedIndex(repo: Repository, manifest: Manifest): Promise<Uint8Array | null> {
  const path = cachePath(repo, manifest.id);
  if (!path) return null;
  try {
    const bytes = await Deno.readFile(path);
    // Only a copy that matches the manifest is used; anything else is fetched again.
    if (
      bytes.length === indexFileSize(manifest.chunkCount) &&
      toHex(sha256(bytes)) === manifest.indexSha256
    ) return bytes;
  } catch {
    // no copy, or unreadable: fetch it
  }
  return null;
}

async function cacheIndex(repo: Repository, id: string, bytes: Uint8Array): Promise<void> {
  const path = cachePath(repo, id);
  if (!path) return;
  try {
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${randomHex(4)}.tmp`;
    await Deno.writeFile(tmp, bytes, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch {
    // a cache that cannot be written only costs a download next time
  }
}

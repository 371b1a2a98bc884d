/**
 * The local-directory backup repository: its layout and paths, crash-safe
 * writes, and the checked reads of config, manifests, indexes and chunks.
 * The formats are in `config.ts`, `chunk.ts`, `index_file.ts` and
 * `manifest.ts`, the writer lock in `lock.ts`. Layout and rules:
 * docs/repository-format.md.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { decodeChunk, maxChunkFileSize } from "./chunk.ts";
import { encodeConfig, parseConfig, type RepoConfig } from "./config.ts";
import { type DamageRecord, encodeDamage, MAX_DAMAGE_SIZE, parseDamage } from "./damage.ts";
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
import { type BackupIndex, decodeIndex, indexFileSize } from "./index_file.ts";
import {
  acquireLock,
  type LockHolder,
  lockHolder,
  type LockOptions,
  type RepoLock,
} from "./lock.ts";
import { encodeManifest, type Manifest, parseManifest } from "./manifest.ts";

export { TEMP_PREFIX };

/** Options of {@linkcode Repository.init}. */
export interface InitOptions {
  /** Chunk size in bytes: a power of two from 4 KiB to 64 MiB. @default 4194304 */
  chunkSize?: number;
  /** zstd compression level, 1..19. @default 1 */
  compressionLevel?: number;
  /** File-system layer (tests inject faults here). @default new DenoFs() */
  fs?: RepoFs;
}

/** Options of {@linkcode Repository.open}. */
export interface OpenOptions {
  /** File-system layer (tests inject faults here). @default new DenoFs() */
  fs?: RepoFs;
  /** A lock older than this many milliseconds is stale. @default 3600000 */
  lockStaleMs?: number;
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
  /** Repository directory. */
  readonly path: string;
  /** Parsed `config.json`. */
  readonly config: RepoConfig;
  /** The file-system layer every repository file operation goes through. */
  readonly fs: RepoFs;
  /** Age after which a lock is stale, in milliseconds. */
  readonly lockStaleMs: number;
  readonly #dirtyDirs = new Set<string>();
  readonly #knownDirs = new Set<string>();

  private constructor(path: string, config: RepoConfig, fs: RepoFs, lockStaleMs: number) {
    this.path = path;
    this.config = config;
    this.fs = fs;
    this.lockStaleMs = lockStaleMs;
  }

  /** Create a repository in `path` (an empty or missing directory). */
  static async init(path: string, options: InitOptions = {}): Promise<Repository> {
    const fs = options.fs ?? new DenoFs();
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
    try {
      const st = await fs.stat(path);
      if (st !== null && !st.isDirectory) {
        throw new RepoError("INVALID", `${path} exists and is not a directory`, { path });
      }
      const existing = (await fs.readDir(path)).filter((n) => !n.startsWith("."));
      if (existing.includes("config.json")) {
        throw new RepoError("INVALID", `${path} is already a blksnap repository`, { path });
      }
      if (existing.length > 0) {
        throw new RepoError("INVALID", `Directory ${path} is not empty`, { path });
      }
      await fs.mkdir(path);
      for (const sub of ["chunks", "backups", "runs"]) await fs.mkdir(join(path, sub));
      await fs.syncDir(path);
      const config: RepoConfig = {
        format: "blksnap-repository",
        version: FORMAT_VERSION,
        id: randomHex(16),
        chunkSize,
        compression: { algorithm: "zstd", level },
        created: new Date().toISOString(),
      };
      const repo = new Repository(path, config, fs, 3_600_000);
      await repo.writeAtomic(join(path, "config.json"), encodeConfig(config));
      return repo;
    } catch (e) {
      throw ioError("init repository", path, e);
    }
  }

  /** Open the repository in `path`, checking its config. */
  static async open(path: string, options: OpenOptions = {}): Promise<Repository> {
    const fs = options.fs ?? new DenoFs();
    const file = join(path, "config.json");
    const bytes = await readBounded(fs, file, MAX_JSON_SIZE);
    if (bytes === null) {
      throw new RepoError("NOT_FOUND", `No repository at ${path} (missing config.json)`, {
        path: file,
      });
    }
    return new Repository(path, parseConfig(bytes, file), fs, options.lockStaleMs ?? 3_600_000);
  }

  /** Path of the lock file. */
  get lockPath(): string {
    return join(this.path, "lock");
  }
  /** Directory of the chunk store. */
  get chunksDir(): string {
    return join(this.path, "chunks");
  }
  /** Directory of indexes and manifests. */
  get backupsDir(): string {
    return join(this.path, "backups");
  }
  /** Directory of failed-run records. */
  get runsDir(): string {
    return join(this.path, "runs");
  }

  /** Path of the chunk named by hex digest `hex`: `chunks/ab/abcdef...`. */
  chunkPath(hex: string): string {
    return join(this.path, "chunks", hex.slice(0, 2), hex);
  }
  /** Path of the index of backup `id`. */
  indexPath(id: string): string {
    return join(this.backupsDir, `${id}.index`);
  }
  /** Path of the manifest of backup `id`. */
  manifestPath(id: string): string {
    return join(this.backupsDir, `${id}.json`);
  }
  /** Path of the damage record (chunks a deep verify found bad). */
  get damagePath(): string {
    return join(this.path, "damage.json");
  }
  /** Path of the failed-run record of run `id`. */
  runRecordPath(id: string): string {
    return join(this.runsDir, `${id}.json`);
  }

  // ---------------------------------------------------------------- writes

  /**
   * Write `data` to `path` crash-safely: a temp file in the same directory,
   * `fsync`, rename over `path`, `fsync` of the directory. The temp file is
   * removed on failure (best effort).
   */
  async writeAtomic(path: string, data: Uint8Array, syncDir = true): Promise<void> {
    const dir = dirname(path);
    const tmp = join(dir, `${TEMP_PREFIX}${randomHex(6)}-${path.slice(dir.length + 1)}`);
    try {
      await this.fs.writeFile(tmp, data, { createNew: true, sync: true });
      await this.fs.rename(tmp, path);
      if (syncDir) await this.fs.syncDir(dir);
    } catch (e) {
      await this.fs.remove(tmp).catch(() => {});
      throw ioError("write", path, e);
    }
  }

  /** True if the chunk `hex` is stored. */
  async hasChunk(hex: string): Promise<boolean> {
    return (await this.fs.stat(this.chunkPath(hex)))?.isFile ?? false;
  }

  /**
   * Store a chunk file (see `encodeChunk` in chunk.ts) under `hex`. The file is durable when this
   * returns; the rename becomes durable at {@linkcode Repository.syncChunkDirs}.
   */
  async putChunk(hex: string, file: Uint8Array): Promise<void> {
    const path = this.chunkPath(hex);
    const dir = dirname(path);
    if (!this.#knownDirs.has(dir)) {
      if (!(await this.fs.stat(dir))?.isDirectory) {
        await this.fs.mkdir(dir).catch((e) => {
          throw ioError("mkdir", dir, e);
        });
        this.#dirtyDirs.add(this.chunksDir);
      }
      this.#knownDirs.add(dir);
    }
    await this.writeAtomic(path, file, false);
    this.#dirtyDirs.add(dir);
  }

  /** `fsync` every chunk directory changed since the last call. */
  async syncChunkDirs(): Promise<void> {
    const dirs = [...this.#dirtyDirs].sort((a, b) => b.length - a.length);
    for (const dir of dirs) {
      await this.fs.syncDir(dir).catch((e) => {
        throw ioError("fsync", dir, e);
      });
      this.#dirtyDirs.delete(dir);
    }
  }

  /** Write a manifest crash-safely (after its index). */
  async writeManifest(manifest: Manifest): Promise<void> {
    await this.writeAtomic(this.manifestPath(manifest.id), encodeManifest(manifest));
  }

  /** Replace the damage record (removed when empty). Hold the lock. */
  async writeDamage(record: DamageRecord): Promise<void> {
    if (record.size > 0) {
      await this.writeAtomic(this.damagePath, encodeDamage(record));
      return;
    }
    try {
      await this.fs.remove(this.damagePath);
    } catch (e) {
      throw ioError("remove", this.damagePath, e);
    }
  }

  /** Remove backup `id`: manifest first (the backup disappears), then its index. */
  async removeBackup(id: string): Promise<void> {
    try {
      await this.fs.remove(this.manifestPath(id));
      await this.fs.syncDir(this.backupsDir);
      await this.fs.remove(this.indexPath(id));
    } catch (e) {
      throw ioError("remove backup", id, e);
    }
  }

  // ---------------------------------------------------------------- reads

  /** Ids of backups that have a manifest, oldest first. */
  async listBackupIds(): Promise<string[]> {
    const names = await this.fs.readDir(this.backupsDir).catch((e) => {
      throw ioError("list", this.backupsDir, e);
    });
    return backupIdsIn(names);
  }

  /** Read and check the manifest of backup `id`. */
  async readManifest(id: string): Promise<Manifest> {
    if (!isBackupId(id)) throw new RepoError("INVALID", `Not a backup id: ${JSON.stringify(id)}`);
    const path = this.manifestPath(id);
    const bytes = await readBounded(this.fs, path, MAX_JSON_SIZE);
    if (bytes === null) throw new RepoError("NOT_FOUND", `Backup ${id} not found`, { path });
    const m = parseManifest(bytes, path);
    if (m.id !== id) throw new CorruptError(path, `manifest names backup ${m.id}`);
    return m;
  }

  /** Read the damage record; empty when there is none. Throws `CORRUPT` when unreadable. */
  async readDamage(): Promise<DamageRecord> {
    const bytes = await readBounded(this.fs, this.damagePath, MAX_DAMAGE_SIZE);
    return bytes === null ? new Map() : parseDamage(bytes, this.damagePath);
  }

  /**
   * Read and check the index of `manifest`'s backup: its own checksum, the
   * SHA-256 the manifest records, and chunk size and capacity against the
   * manifest.
   */
  async readIndex(manifest: Manifest): Promise<BackupIndex> {
    const path = this.indexPath(manifest.id);
    if (manifest.chunkCount > MAX_CHUNK_COUNT) throw new CorruptError(path, "chunk count too big");
    const bytes = await readBounded(this.fs, path, indexFileSize(manifest.chunkCount));
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
    return index;
  }

  /**
   * Read the index of backup `id` checked by its own checksum only, for when
   * its manifest is unreadable (gc still needs to know which chunks it uses).
   * Bounded to 1 GiB (some 33 million chunks).
   */
  async readIndexAlone(id: string): Promise<BackupIndex> {
    const path = this.indexPath(id);
    const bytes = await readBounded(this.fs, path, 1 << 30);
    if (bytes === null) {
      throw new RepoError("NOT_FOUND", `Index of backup ${id} is missing`, { path });
    }
    return decodeIndex(bytes, path);
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
      file = await readBounded(this.fs, path, maxChunkFileSize(maxLength));
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
    return acquireLock(this, operation, options);
  }

  /** Who holds the lock, and whether it is stale. */
  lockHolder(): Promise<LockHolder> {
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
 * Read `path` if it exists and is at most `max` bytes; `null` if missing;
 * `CorruptError` if larger (checked before reading, so no huge allocation).
 */
export async function readBounded(
  fs: RepoFs,
  path: string,
  max: number,
): Promise<Uint8Array | null> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    throw ioError("stat", path, e);
  }
  if (st === null) return null;
  if (!st.isFile) throw new CorruptError(path, "not a regular file");
  if (st.size > max) throw new CorruptError(path, `${st.size} bytes, more than ${max}`);
  try {
    const bytes = await fs.readFile(path);
    if (bytes.length > max) throw new CorruptError(path, `grew past ${max} bytes`);
    return bytes;
  } catch (e) {
    if (e instanceof CorruptError) throw e;
    if (e instanceof Deno.errors.NotFound) return null;
    throw ioError("read", path, e);
  }
}

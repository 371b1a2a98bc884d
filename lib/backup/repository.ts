/**
 * The local-directory backup repository: config, content-addressed chunk
 * store, backup indexes and manifests, crash-safe writes and the writer
 * lock. Layout and rules: docs/repository-format.md.
 *
 * @module
 */

import { dirname, join } from "node:path";
import zlib from "node:zlib";
import { CorruptError, errnoOf, ioError, RepoError } from "./errors.ts";
import {
  type BackupIndex,
  bytesEqual,
  CHUNK_HEADER_SIZE,
  ChunkEncoding,
  decodeChunkHeader,
  decodeIndex,
  DEFAULT_CHUNK_SIZE,
  DIGEST_SIZE,
  encodeChunkFile,
  encodeConfig,
  encodeManifest,
  FORMAT_VERSION,
  isBackupId,
  isDigestHex,
  isValidChunkSize,
  type Manifest,
  MAX_CHUNK_COUNT,
  MAX_JSON_SIZE,
  parseConfig,
  parseManifest,
  type RepoConfig,
  sha256,
  toHex,
} from "./format.ts";
import { DenoFs, type RepoFs } from "./fs.ts";

/** Prefix of temporary files; never data, removed by `gc`. */
export const TEMP_PREFIX = ".tmp-";

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

/** Contents of the lock file. */
export interface LockInfo {
  /** Process id of the holder. */
  pid: number;
  /** Host name of the holder. */
  host: string;
  /** When the lock was taken or last refreshed (ISO 8601 UTC). */
  time: string;
  /** What the holder is doing (`backup`, `prune`, `gc`, `verify`). */
  operation: string;
  /** Random token identifying this acquisition. */
  token: string;
}

/** Options of {@linkcode Repository.lock}. */
export interface LockOptions {
  /** Wait up to this many milliseconds for a held lock. @default 0 */
  waitMs?: number;
  /** Remove a stale lock (dead pid on this host, or older than `lockStaleMs`). @default true */
  breakStale?: boolean;
}

/** This host's name: `Deno.hostname()` (needs `--allow-sys`), else /etc/hostname. */
function hostname(): string {
  try {
    return Deno.hostname();
  } catch {
    try {
      return Deno.readTextFileSync("/etc/hostname").trim() || "unknown";
    } catch {
      return "unknown";
    }
  }
}

/**
 * Whether process `pid` exists on this host: `/proc/<pid>` (Deno needs
 * `--allow-all` to read /proc), else `kill -0` (needs `--allow-run`); when
 * neither is permitted it answers true, so the lock is judged by age only.
 */
function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
  }
  try {
    const out = new Deno.Command("kill", {
      args: ["-0", String(pid)],
      stdout: "null",
      stderr: "piped",
    }).outputSync();
    if (out.success) return true;
    return !/no such process/i.test(new TextDecoder().decode(out.stderr));
  } catch {
    return true;
  }
}

function randomHex(bytes: number): string {
  const b = new Uint8Array(bytes);
  crypto.getRandomValues(b);
  return toHex(b);
}

function parseLockInfo(bytes: Uint8Array): LockInfo | null {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes));
    if (
      typeof o === "object" && o !== null && Number.isSafeInteger(o.pid) &&
      typeof o.host === "string" && typeof o.time === "string" && !isNaN(Date.parse(o.time)) &&
      typeof o.operation === "string" && typeof o.token === "string"
    ) return o as LockInfo;
  } catch {
    // unreadable lock: judged by its mtime
  }
  return null;
}

/** A held repository lock; release it with {@linkcode RepoLock.release} or `await using`. */
export class RepoLock implements AsyncDisposable {
  readonly #repo: Repository;
  readonly #info: LockInfo;
  readonly #timer: ReturnType<typeof setInterval>;
  #held = true;

  /** @internal Use {@linkcode Repository.lock}. */
  constructor(repo: Repository, info: LockInfo, refreshMs: number) {
    this.#repo = repo;
    this.#info = info;
    this.#timer = setInterval(() => void this.#refresh(), refreshMs);
    Deno.unrefTimer(this.#timer);
  }

  /** The lock file contents. */
  get info(): LockInfo {
    return this.#info;
  }

  async #refresh(): Promise<void> {
    if (!this.#held) return;
    try {
      const current = parseLockInfo(await this.#repo.fs.readFile(this.#repo.lockPath));
      if (current?.token !== this.#info.token) return; // taken over as stale: not ours any more
      this.#info.time = new Date().toISOString();
      await this.#repo.writeAtomic(this.#repo.lockPath, lockBytes(this.#info));
    } catch {
      // a failed refresh only makes the lock look older
    }
  }

  /** Release the lock if this holder still owns it. Idempotent. */
  async release(): Promise<void> {
    if (!this.#held) return;
    this.#held = false;
    clearInterval(this.#timer);
    const fs = this.#repo.fs;
    try {
      const current = parseLockInfo(await fs.readFile(this.#repo.lockPath));
      if (current?.token === this.#info.token) await fs.remove(this.#repo.lockPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) {
        throw ioError("release lock", this.#repo.lockPath, e);
      }
    }
  }

  /** Same as {@linkcode RepoLock.release}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.release();
  }
}

function lockBytes(info: LockInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info) + "\n");
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
      await fs.mkdir(path);
      const existing = (await fs.readDir(path)).filter((n) => !n.startsWith("."));
      if (existing.length > 0) {
        throw new RepoError("INVALID", `Directory ${path} is not empty`, { path });
      }
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
   * Store a chunk file (see {@linkcode encodeChunk}) under `hex`. The file is durable when this
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
    return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter(isBackupId)
      .sort();
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

  /**
   * Read and check the index of `manifest`'s backup: its own checksum, the
   * SHA-256 the manifest records, and chunk size and capacity against the
   * manifest.
   */
  async readIndex(manifest: Manifest): Promise<BackupIndex> {
    const path = this.indexPath(manifest.id);
    const expected = 64 + manifest.chunkCount * DIGEST_SIZE;
    if (manifest.chunkCount > MAX_CHUNK_COUNT) throw new CorruptError(path, "chunk count too big");
    const bytes = await readBounded(this.fs, path, expected);
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
    let data: Uint8Array;
    try {
      const header = decodeChunkHeader(file, maxLength);
      const payload = file.subarray(CHUNK_HEADER_SIZE);
      if ((zlib.crc32(payload) >>> 0) !== header.payloadCrc32) {
        throw new Error("payload CRC-32 mismatch");
      }
      data = header.encoding === ChunkEncoding.Raw
        ? payload
        : zstdDecompressSync(payload, header.length);
      if (data.length !== header.length) {
        throw new Error(`decompresses to ${data.length} bytes, header says ${header.length}`);
      }
    } catch (e) {
      throw badChunk(hex, path, (e as Error).message, e);
    }
    if (exactLength !== undefined && data.length !== exactLength) {
      throw badChunk(hex, path, `is ${data.length} bytes, expected ${exactLength}`);
    }
    if (!bytesEqual(sha256(data), fromHexFast(hex))) {
      throw badChunk(hex, path, "content does not match its SHA-256 name");
    }
    return data;
  }

  // ---------------------------------------------------------------- lock

  /**
   * Take the writer lock (`lock` file: pid, host, time, operation). A lock
   * whose pid is dead on this host, or older than `lockStaleMs`, is stale and
   * removed; otherwise waits up to `waitMs`, then throws `LOCKED`. The holder
   * refreshes the time every `lockStaleMs / 3`.
   */
  async lock(operation: string, options: LockOptions = {}): Promise<RepoLock> {
    const deadline = Date.now() + (options.waitMs ?? 0);
    const info: LockInfo = {
      pid: Deno.pid,
      host: hostname(),
      time: new Date().toISOString(),
      operation,
      token: randomHex(8),
    };
    for (;;) {
      // Write the lock complete under a temp name, then link it into place: the
      // link is the atomic test-and-set, and a reader never sees a half-written lock.
      const tmp = join(this.path, `${TEMP_PREFIX}lock-${info.token}`);
      try {
        info.time = new Date().toISOString();
        await this.fs.writeFile(tmp, lockBytes(info), { sync: true });
        try {
          await this.fs.link(tmp, this.lockPath);
          return new RepoLock(this, info, Math.max(1000, Math.floor(this.lockStaleMs / 3)));
        } finally {
          await this.fs.remove(tmp).catch(() => {});
        }
      } catch (e) {
        if (!(e instanceof Deno.errors.AlreadyExists) && errnoOf(e) !== "EEXIST") {
          throw ioError("lock", this.lockPath, e);
        }
      }
      const holder = await this.lockHolder();
      if (holder.stale && (options.breakStale ?? true)) {
        // Move it aside first so two breakers cannot both delete a fresh lock.
        const aside = join(this.path, `${TEMP_PREFIX}stale-lock-${randomHex(6)}`);
        try {
          await this.fs.rename(this.lockPath, aside);
          await this.fs.remove(aside);
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw ioError("break lock", this.lockPath, e);
        }
        continue;
      }
      if (holder.info === null && !holder.exists) continue;
      if (Date.now() >= deadline) {
        const h = holder.info;
        const who = h
          ? `${h.operation} by pid ${h.pid} on ${h.host} since ${h.time}`
          : "an unreadable lock file";
        throw new RepoError("LOCKED", `Repository ${this.path} is locked: ${who}`, {
          path: this.lockPath,
        });
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Who holds the lock, and whether it is stale. */
  async lockHolder(): Promise<{ exists: boolean; info: LockInfo | null; stale: boolean }> {
    const st = await this.fs.stat(this.lockPath);
    if (st === null) return { exists: false, info: null, stale: false };
    let info: LockInfo | null = null;
    try {
      info = parseLockInfo(await this.fs.readFile(this.lockPath));
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { exists: false, info: null, stale: false };
    }
    const time = info ? Date.parse(info.time) : st.mtimeMs;
    const old = Date.now() - time > this.lockStaleMs;
    const dead = info !== null && info.host === hostname() && info.pid !== Deno.pid &&
      !pidAlive(info.pid);
    return { exists: true, info, stale: old || dead };
  }
}

/** Largest valid chunk file for chunks of at most `chunkSize` bytes. */
export function maxChunkFileSize(chunkSize: number): number {
  return CHUNK_HEADER_SIZE + chunkSize;
}

/** The chunk file of `data` given its zstd form: zstd if smaller, raw otherwise. */
function chunkFileOf(data: Uint8Array, zstd: Uint8Array): Uint8Array {
  const useZstd = zstd.length < data.length;
  const payload = useZstd ? zstd : data;
  return encodeChunkFile({
    encoding: useZstd ? ChunkEncoding.Zstd : ChunkEncoding.Raw,
    length: data.length,
    payloadLength: payload.length,
    payloadCrc32: zlib.crc32(payload) >>> 0,
  }, payload);
}

/** Encode chunk bytes as a chunk file: zstd if it is smaller, raw otherwise. */
export async function encodeChunk(data: Uint8Array, level: number): Promise<Uint8Array> {
  return chunkFileOf(data, await zstdCompress(data, level));
}

/** Synchronous {@linkcode encodeChunk}: zstd on the calling thread. */
export function encodeChunkSync(data: Uint8Array, level: number): Uint8Array {
  const z = zlib.zstdCompressSync(data, {
    params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
  });
  return chunkFileOf(data, new Uint8Array(z.buffer, z.byteOffset, z.length));
}

function badChunk(hex: string, path: string, problem: string, cause?: unknown): RepoError {
  return new RepoError("BAD_CHUNK", `Chunk ${hex} ${problem}`, { path, cause });
}

function fromHexFast(hex: string): Uint8Array {
  const out = new Uint8Array(hex.length >> 1);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(2 * i, 2), 16);
  return out;
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

/** SHA-256 of `data` on Deno's thread pool. */
export async function digestOf(data: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>));
}

/** zstd-compress `data` at `level` on the libuv-style thread pool. */
export function zstdCompress(data: Uint8Array, level: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlib.zstdCompress(
      data,
      { params: { [zlib.constants.ZSTD_c_compressionLevel]: level } },
      (
        err,
        out,
      ) => (err ? reject(err) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length))),
    );
  });
}

/** Decompress a zstd frame on the calling thread, failing if the output would exceed `maxLength`. */
export function zstdDecompressSync(data: Uint8Array, maxLength: number): Uint8Array {
  const out = zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, maxLength) });
  return new Uint8Array(out.buffer, out.byteOffset, out.length);
}

/** Decompress a zstd frame, failing if the output would exceed `maxLength`. */
export function zstdDecompress(data: Uint8Array, maxLength: number): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    zlib.zstdDecompress(
      data,
      { maxOutputLength: Math.max(1, maxLength) },
      (
        err,
        out,
      ) => (err ? reject(err) : resolve(new Uint8Array(out.buffer, out.byteOffset, out.length))),
    );
  });
}

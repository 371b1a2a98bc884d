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
import { digestOf, encodeChunk } from "./chunk.ts";
import {
  configMacInput,
  encodeConfig,
  ENCRYPTED_FORMAT_VERSION,
  parseConfig,
  type RepoConfig,
} from "./config.ts";
import { hmacSha256, TAG_SIZE } from "./crypto/aead.ts";
import { type DamageRecord, encodeDamage, MAX_DAMAGE_SIZE, parseDamage } from "./damage.ts";
import {
  deriveKeys,
  encodeSlot,
  type KeySlot,
  makeSlot,
  newMaster,
  openSlot,
  parseSlot,
  type RepoKeys,
  type ScryptParams,
} from "./crypto/keys.ts";
import { openObject, SEALED_OBJECT_HEADER_SIZE, sealObject } from "./crypto/sealed.ts";
import { type ChunkCodec, chunkCodec, type ChunkCodecSpec } from "./chunk_codec.ts";
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
  type PreparedPut,
  preparePut,
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
  /**
   * Encrypt (format 2) with a key slot that opens with this passphrase (or the one a function
   * returns, asked only once the location is known to be usable). Absent: a plain (format 1)
   * repository. The CLI encrypts unless `--no-encryption`.
   */
  passphrase?: string | (() => string | Promise<string>);
  /** Label of the first key slot. @default "initial" */
  keyLabel?: string;
  /** scrypt cost of the key slot. @default DEFAULT_SCRYPT (2^17, 8, 1) */
  scrypt?: ScryptParams;
}

/** Options of {@linkcode Repository.open}. */
export interface OpenOptions {
  /** File-system layer of a local repository (tests inject faults here). @default new DenoFs() */
  fs?: RepoFs;
  /** S3 settings and client options of an `s3://` repository. @default from the environment */
  s3?: S3BackendOptions;
  /** A lock older than this many milliseconds is stale. @default 3600000 */
  lockStaleMs?: number;
  /**
   * The passphrase of an encrypted repository, or a function asked for it
   * (a terminal prompt). @default $BLKSNAP_PASSWORD
   */
  passphrase?: string | (() => string | Promise<string>);
}

/** The object name of the damage record. */
const DAMAGE_NAME = "damage.json";

/** Bytes a sealed index or manifest adds to its plaintext (header and tag). */
const SEALED_OVERHEAD = SEALED_OBJECT_HEADER_SIZE + TAG_SIZE;

/** A passphrase must not be empty. */
function checkPassphrase(p: string): void {
  if (p.length === 0) throw new RepoError("KEY", "The passphrase is empty");
}

async function readSlots(backend: Backend): Promise<KeySlot[]> {
  const slots: KeySlot[] = [];
  for await (const o of backend.list("keys/")) {
    if (!o.name.endsWith(".json") || o.name.slice(5).startsWith(TEMP_PREFIX)) continue;
    const bytes = await backend.get(o.name, 64 * 1024);
    if (bytes === null) continue;
    try {
      slots.push(parseSlot(bytes, backend.display(o.name)));
    } catch (e) {
      throw new CorruptError(backend.display(o.name), (e as Error).message, e);
    }
  }
  return slots;
}

/**
 * The keys of an encrypted repository: the first slot that opens with the
 * passphrase gives the master secret; then the config's MAC must match.
 */
async function unlock(
  backend: Backend,
  config: RepoConfig,
  given: OpenOptions["passphrase"],
): Promise<{ keys: RepoKeys; slot: string }> {
  let env: string | undefined;
  try {
    env = Deno.env.get("BLKSNAP_PASSWORD");
  } catch {
    env = undefined;
  }
  const source = given ?? env;
  if (source === undefined) {
    throw new RepoError(
      "KEY",
      `Repository ${backend.location} is encrypted: give its passphrase (BLKSNAP_PASSWORD, ` +
        "--password-file, or at the prompt)",
    );
  }
  const passphrase = typeof source === "function" ? await source() : source;
  const slots = await readSlots(backend);
  if (slots.length === 0) {
    throw new CorruptError(backend.display("keys"), "an encrypted repository without key slots");
  }
  for (const slot of slots) {
    const master = openSlot(slot, config.id, passphrase);
    if (master === null) continue;
    const keys = deriveKeys(master, config.id);
    const mac = toHex(hmacSha256(keys.metaKey, configMacInput(config)));
    if (mac !== config.encryption!.mac) {
      throw new CorruptError(backend.display("config.json"), "its MAC does not match (altered)");
    }
    return { keys, slot: slot.id };
  }
  throw new RepoError(
    "KEY",
    `Wrong passphrase: none of the ${slots.length} key slot(s) of ${backend.location} opens with it`,
  );
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
  /** The working keys of an encrypted repository, `null` for a plain one. */
  readonly keys: RepoKeys | null;
  #codec: ChunkCodec | null = null;
  /** The key slot the passphrase opened (`null`: plain, or just created). */
  openedSlot: string | null = null;
  /** ETags of `backups/` objects from the last S3 listing (the manifest cache's keys). */
  readonly #listedEtags = new Map<string, string>();

  private constructor(
    backend: Backend,
    config: RepoConfig,
    lockStaleMs: number,
    keys: RepoKeys | null,
  ) {
    this.path = backend.location;
    this.backend = backend;
    this.config = config;
    this.lockStaleMs = lockStaleMs;
    this.keys = keys;
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
    // The passphrase is asked once the location is known to be usable, before anything is made.
    let passphrase: string | undefined;
    const ask = async (): Promise<void> => {
      if (options.passphrase === undefined) return;
      passphrase = typeof options.passphrase === "function"
        ? await options.passphrase()
        : options.passphrase;
      checkPassphrase(passphrase);
    };
    try {
      if (backend instanceof LocalBackend) {
        const fs = backend.fs;
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
        await ask();
        await fs.mkdir(path);
        for (const sub of ["chunks", "backups", "runs", "keys"]) await fs.mkdir(join(path, sub));
        await fs.syncDir(path);
      } else if (backend instanceof S3Backend) {
        const exists = await backend.client.bucketExists();
        if (exists && lockDays > 0 && !(await backend.client.objectLockEnabled())) {
          throw new RepoError(
            "INVALID",
            `Bucket ${backend.client.bucket} has no Object Lock; S3 can turn it on only when a ` +
              "bucket is created: use a new bucket",
          );
        }
        if (exists && (await backend.stat("config.json")) !== null) {
          throw new RepoError("INVALID", `There is a repository at ${path} already`, { path });
        }
        await ask();
        if (!exists) await backend.client.createBucket({ objectLock: lockDays > 0 });
        backend.objectLockDays = lockDays;
      }
      const config: RepoConfig = {
        format: "blksnap-repository",
        version: options.passphrase === undefined ? FORMAT_VERSION : ENCRYPTED_FORMAT_VERSION,
        id: randomHex(16),
        chunkSize,
        compression: { algorithm: "zstd", level },
        created: new Date().toISOString(),
        ...(lockDays > 0 ? { objectLockDays: lockDays } : {}),
      };
      let keys: RepoKeys | null = null;
      if (passphrase !== undefined) {
        const master = newMaster();
        keys = deriveKeys(master, config.id);
        config.encryption = { aead: "chacha20-poly1305", mac: "0".repeat(64) };
        config.encryption.mac = toHex(hmacSha256(keys.metaKey, configMacInput(config)));
        const slot = makeSlot(master, config.id, passphrase, {
          label: options.keyLabel ?? "initial",
          scrypt: options.scrypt,
        });
        // The key slot first: a config that names an encryption without any key is useless.
        await backend.put(`keys/${slot.id}.json`, encodeSlot(slot));
      }
      const repo = new Repository(backend, config, 3_600_000, keys);
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
    const unlocked = config.encryption ? await unlock(backend, config, options.passphrase) : null;
    const repo = new Repository(
      backend,
      config,
      options.lockStaleMs ?? 3_600_000,
      unlocked?.keys ?? null,
    );
    repo.openedSlot = unlocked?.slot ?? null;
    return repo;
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
  /** Path (or URL) of the damage record (chunks a deep verify found bad). */
  get damagePath(): string {
    return this.backend.display(DAMAGE_NAME);
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
    await this.backend.put(indexName(id), this.#seal(indexName(id), bytes));
  }

  /**
   * The index of backup `id` written and durable but not visible until the
   * result's `commit()` (crash-safe like {@linkcode Repository.writeIndex}).
   */
  prepareIndex(id: string, bytes: Uint8Array): Promise<PreparedPut> {
    return preparePut(this.backend, indexName(id), this.#seal(indexName(id), bytes));
  }

  /** {@linkcode Repository.writeManifest} in two halves, like {@linkcode Repository.prepareIndex}. */
  async prepareManifest(manifest: Manifest): Promise<PreparedPut> {
    const name = manifestName(manifest.id);
    const prepared = await preparePut(
      this.backend,
      name,
      this.#seal(name, encodeManifest(manifest)),
    );
    return {
      commit: () => {
        this.#listedEtags.delete(name); // its cached copy is stale from now on
        return prepared.commit();
      },
      discard: () => prepared.discard(),
    };
  }

  /** Write a failed-run record. */
  async writeRunRecord(id: string, bytes: Uint8Array): Promise<void> {
    await this.backend.put(runRecordName(id), bytes);
  }

  /** Write a manifest crash-safely (after its index). */
  async writeManifest(manifest: Manifest): Promise<void> {
    const name = manifestName(manifest.id);
    this.#listedEtags.delete(name); // its cached copy is stale from now on
    await this.backend.put(name, this.#seal(name, encodeManifest(manifest)));
  }

  /** Replace the damage record (removed when empty). Hold the lock. */
  async writeDamage(record: DamageRecord): Promise<void> {
    try {
      if (record.size > 0) {
        await this.backend.put(DAMAGE_NAME, this.#seal(DAMAGE_NAME, encodeDamage(record)));
      } else await this.backend.delete(DAMAGE_NAME);
    } catch (e) {
      throw ioError("write", this.damagePath, e);
    }
  }

  /** Remove backup `id`: manifest first (the backup disappears), then its index. */
  async removeBackup(id: string): Promise<void> {
    this.#listedEtags.delete(manifestName(id));
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
    for await (const o of this.backend.list("backups/")) {
      names.push(o.name.slice(8));
      if (o.etag !== undefined) this.#listedEtags.set(o.name, o.etag);
    }
    return backupIdsIn(names);
  }

  /** Read and check the manifest of backup `id`. */
  async readManifest(id: string): Promise<Manifest> {
    if (!isBackupId(id)) throw new RepoError("INVALID", `Not a backup id: ${JSON.stringify(id)}`);
    const path = this.manifestPath(id);
    // On S3, a manifest whose ETag the last listing gave is read from the cache when a copy
    // with that ETag is there (a verify that marks it changes its ETag).
    const etag = this.#listedEtags.get(manifestName(id));
    const cached = etag === undefined ? null : await readCachedManifest(this, id, etag);
    const stored = cached ??
      await this.backend.get(manifestName(id), MAX_JSON_SIZE + SEALED_OVERHEAD);
    if (stored === null) throw new RepoError("NOT_FOUND", `Backup ${id} not found`, { path });
    const m = parseManifest(this.#unseal(manifestName(id), stored), path);
    if (m.id !== id) throw new CorruptError(path, `manifest names backup ${m.id}`);
    if (etag !== undefined && cached === null) await cacheManifest(this, id, etag, stored);
    return m;
  }

  /** Size of the stored index of a backup of `chunkCount` chunks (sealed when encrypted). */
  indexObjectSize(chunkCount: number): number {
    return indexFileSize(chunkCount) + (this.keys ? SEALED_OVERHEAD : 0);
  }

  /** Read the damage record; empty when there is none. Throws `CORRUPT` when unreadable. */
  async readDamage(): Promise<DamageRecord> {
    const stored = await this.backend.get(DAMAGE_NAME, MAX_DAMAGE_SIZE + SEALED_OVERHEAD);
    return stored === null
      ? new Map()
      : parseDamage(this.#unseal(DAMAGE_NAME, stored), this.damagePath);
  }

  /**
   * Read the index of backup `id` checked by its own checksum only, for when
   * its manifest is unreadable (gc still needs to know which chunks it uses).
   * Bounded to 1 GiB (some 33 million chunks).
   */
  async readIndexAlone(id: string): Promise<BackupIndex> {
    const path = this.indexPath(id);
    const stored = await this.backend.get(indexName(id), (1 << 30) + SEALED_OVERHEAD);
    if (stored === null) {
      throw new RepoError("NOT_FOUND", `Index of backup ${id} is missing`, { path });
    }
    return decodeIndex(this.#unseal(indexName(id), stored), path);
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
    const size = this.indexObjectSize(manifest.chunkCount);
    const cached = options.fresh ? null : await readCachedIndex(this, manifest, size);
    if (cached) {
      try {
        return this.#checkIndex(manifest, cached);
      } catch {
        // a stale or damaged copy: fetched again below
      }
    }
    const stored = await this.backend.get(indexName(manifest.id), size);
    if (stored === null) {
      throw new RepoError("NOT_FOUND", `Index of backup ${manifest.id} is missing`, { path });
    }
    const index = this.#checkIndex(manifest, stored);
    await cacheIndex(this, manifest.id, stored);
    return index;
  }

  #checkIndex(manifest: Manifest, stored: Uint8Array): BackupIndex {
    const path = this.indexPath(manifest.id);
    const bytes = this.#unseal(indexName(manifest.id), stored);
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
   * The stored object of chunk `hex` as it is, unchecked (see
   * {@linkcode Repository.readChunk} for the checked bytes; `chunk_workers.ts`
   * checks it on another thread). Throws `BAD_CHUNK` naming it when it is
   * missing or larger than any chunk of at most `maxLength` bytes. With
   * `into` (at least `codec.maxStoredSize(maxLength)` bytes) a local
   * repository reads the object into it: the result is then a view of it.
   */
  async readStoredChunk(
    hex: string,
    maxLength: number,
    into?: Uint8Array,
  ): Promise<Uint8Array> {
    if (!isDigestHex(hex)) throw new RepoError("INVALID", `Not a chunk digest: ${hex}`);
    let file: Uint8Array | null;
    try {
      file = await this.backend.get(chunkName(hex), this.codec.maxStoredSize(maxLength), into);
    } catch (e) {
      if (e instanceof CorruptError) throw this.badChunk(hex, "is larger than any valid chunk", e);
      throw e;
    }
    if (file === null) throw this.badChunk(hex, "missing");
    return file;
  }

  /**
   * Read chunk `hex`: check the file header, its length and the payload's
   * CRC-32 (the tag in an encrypted repository), decompress (output bounded
   * by `maxLength`), and check the name against the bytes and, when given,
   * the length. Throws `BAD_CHUNK` naming it.
   */
  async readChunk(hex: string, maxLength: number, exactLength?: number): Promise<Uint8Array> {
    const file = await this.readStoredChunk(hex, maxLength);
    try {
      return this.codec.decode(file, hex, maxLength, exactLength);
    } catch (e) {
      throw this.badChunk(hex, (e as Error).message, e);
    }
  }

  /** The `BAD_CHUNK` error of chunk `hex`: "Chunk <hex> <problem>", with its path. */
  badChunk(hex: string, problem: string, cause?: unknown): RepoError {
    return new RepoError("BAD_CHUNK", `Chunk ${hex} ${problem}`, {
      path: this.chunkPath(hex),
      cause,
    });
  }

  // ---------------------------------------------------------------- encryption

  /** True for a format-2 (encrypted) repository. */
  get encrypted(): boolean {
    return this.keys !== null;
  }

  /** What the chunk codec of this repository is made of (posted to worker threads). */
  get codecSpec(): ChunkCodecSpec {
    return { level: this.config.compression.level, keys: this.keys };
  }

  /** The chunk codec: names, encodes and checks chunks, in this thread. */
  get codec(): ChunkCodec {
    this.#codec ??= chunkCodec(this.codecSpec);
    return this.#codec;
  }

  /**
   * The id of a chunk's bytes: SHA-256 (on Deno's thread pool) in a plain
   * repository, HMAC-SHA256 under the id key in an encrypted one.
   */
  async chunkDigest(data: Uint8Array): Promise<Uint8Array> {
    return this.keys ? this.codec.name(data) : await digestOf(data);
  }

  /** The stored object of a chunk: zstd or raw, sealed in an encrypted repository. */
  async encodeChunk(data: Uint8Array, digest: Uint8Array): Promise<Uint8Array> {
    if (!this.keys) return await encodeChunk(data, this.config.compression.level);
    return this.codec.encode(data, digest);
  }

  /** Seal `plain` for object `name` in an encrypted repository; as is in a plain one. */
  #seal(name: string, plain: Uint8Array): Uint8Array {
    return this.keys ? sealObject(this.keys, name, plain) : plain;
  }

  #unseal(name: string, stored: Uint8Array): Uint8Array {
    if (!this.keys) return stored;
    try {
      return openObject(this.keys, name, stored);
    } catch (e) {
      throw new CorruptError(this.backend.display(name), (e as Error).message, e);
    }
  }

  /** The key slots (`keys/<slot>.json`) of an encrypted repository. */
  async keySlots(): Promise<KeySlot[]> {
    return await readSlots(this.backend);
  }

  /** Add a key slot opening with `passphrase`; returns it. */
  async addKey(
    passphrase: string,
    options: { label?: string; scrypt?: ScryptParams } = {},
  ): Promise<KeySlot> {
    if (!this.keys) throw new RepoError("INVALID", `${this.path} is not encrypted`);
    checkPassphrase(passphrase);
    const slot = makeSlot(this.keys.master, this.config.id, passphrase, options);
    await this.backend.put(`keys/${slot.id}.json`, encodeSlot(slot));
    return slot;
  }

  /** Remove key slot `id`; the last one is refused (the data would be lost for good). */
  async removeKey(id: string): Promise<void> {
    const slots = await this.keySlots();
    if (!slots.some((s) => s.id === id)) {
      throw new RepoError("NOT_FOUND", `No key slot ${id} in ${this.path}`);
    }
    if (slots.length === 1) {
      throw new RepoError("INVALID", `Key slot ${id} is the last one: add another key first`);
    }
    await this.backend.delete(`keys/${id}.json`);
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

  /** Remove the lock whoever holds it (see `unlock` in lock.ts, which decides when). */
  async breakLock(): Promise<void> {
    if (this.backend instanceof S3Backend) await this.backend.delete("lock");
    else await this.fs.remove(this.lockPath);
  }
}

/** The backup ids among the names of `backups/` (files `<id>.json`), sorted oldest first. */
export function backupIdsIn(names: readonly string[]): string[] {
  return names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter(isBackupId)
    .sort();
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

function cachePath(repo: Repository, id: string, suffix = ".index"): string | null {
  const dir = repo.backend.kind === "s3" ? cacheDir() : null;
  return dir && join(dir, repo.config.id, `${id}${suffix}`);
}

/** The cached manifest of backup `id` stored with ETag `etag`, or `null`. */
async function readCachedManifest(
  repo: Repository,
  id: string,
  etag: string,
): Promise<Uint8Array | null> {
  const path = cachePath(repo, id, `.${etag}.json`);
  if (!path || !/^[0-9a-zA-Z-]+$/.test(etag)) return null;
  try {
    const bytes = await Deno.readFile(path);
    // The copy is checked as a download would be (parse, seal); an MD5 ETag of another
    // content would have another name.
    if (bytes.length <= MAX_JSON_SIZE + SEALED_OVERHEAD) return bytes;
  } catch {
    // no copy
  }
  return null;
}

async function cacheManifest(
  repo: Repository,
  id: string,
  etag: string,
  bytes: Uint8Array,
): Promise<void> {
  const path = cachePath(repo, id, `.${etag}.json`);
  if (!path || !/^[0-9a-zA-Z-]+$/.test(etag)) return;
  try {
    const dir = join(path, "..");
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    // Older copies of this manifest (before a verify marked it) are dropped.
    for await (const e of Deno.readDir(dir)) {
      if (e.name.startsWith(`${id}.`) && e.name.endsWith(".json")) {
        await Deno.remove(join(dir, e.name)).catch(() => {});
      }
    }
    const tmp = `${path}.${randomHex(4)}.tmp`;
    await Deno.writeFile(tmp, bytes, { mode: 0o600 });
    await Deno.rename(tmp, path);
  } catch {
    // a cache that cannot be written only costs a download next time
  }
}

async function readCachedIndex(
  repo: Repository,
  manifest: Manifest,
  max: number,
): Promise<Uint8Array | null> {
  const path = cachePath(repo, manifest.id);
  if (!path) return null;
  try {
    const bytes = await Deno.readFile(path);
    // The copy is the stored object (sealed when encrypted); readIndex checks it against the
    // manifest like a download, and a copy that fails is fetched again (below).
    if (bytes.length <= max) return bytes;
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

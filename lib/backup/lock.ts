/**
 * The repository's writer lock: a `lock` file (pid, host, time, operation,
 * token) created atomically with a hard link, refreshed while held, and
 * broken when stale (its pid is dead on this host, or it is older than the
 * repository's `lockStaleMs`). Rules: docs/repository-format.md "Lock".
 *
 * @module
 */

import { join } from "node:path";
import { errnoOf, ioError, RepoError } from "./errors.ts";
import { randomHex, TEMP_PREFIX } from "./format.ts";
import type { RepoFs } from "./fs.ts";

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

/** Options of {@linkcode acquireLock} (and `Repository.lock`). */
export interface LockOptions {
  /** Wait up to this many milliseconds for a held lock. @default 0 */
  waitMs?: number;
  /** Remove a stale lock (dead pid on this host, or older than `lockStaleMs`). @default true */
  breakStale?: boolean;
  /**
   * Return as soon as the lock is taken and make its contents durable
   * (`fsync`) in the background: the holder awaits
   * {@linkcode RepoLock.durable} before it changes anything. Saves one
   * `fsync` in sequence (a backup reads while it runs). Only a power loss
   * in those milliseconds can leave an empty lock file, which is then stale
   * by its age. @default false
   */
  syncLater?: boolean;
}

/** Who holds a lock, as {@linkcode lockHolder} sees it. */
export interface LockHolder {
  /** A lock file exists. */
  exists: boolean;
  /** Its contents, or null when missing or unreadable. */
  info: LockInfo | null;
  /** It may be broken: dead pid on this host, or too old. */
  stale: boolean;
}

/** What the lock needs of a repository. */
export interface Lockable {
  /** Repository directory (temp files are made here). */
  readonly path: string;
  /** Path of the lock file. */
  readonly lockPath: string;
  /** File-system layer. */
  readonly fs: RepoFs;
  /** Age after which a lock is stale, in milliseconds. */
  readonly lockStaleMs: number;
  /** Crash-safe replace of a file. */
  writeAtomic(path: string, data: Uint8Array): Promise<void>;
}

/** This host's name: `Deno.hostname()` (needs `--allow-sys`), else /etc/hostname. */
export function hostname(): string {
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
export function pidAlive(pid: number): boolean {
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

/** The lock's contents, or `null` when it is not a valid lock (judged by its age then). */
export function parseLockInfo(bytes: Uint8Array): LockInfo | null {
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

/** The bytes of a lock holding `info`. */
export function lockBytes(info: LockInfo): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(info) + "\n");
}

/** A held repository lock; release it with {@linkcode RepoLock.release} or `await using`. */
export class RepoLock implements AsyncDisposable {
  readonly #repo: Lockable;
  readonly #info: LockInfo;
  readonly #timer: ReturnType<typeof setInterval>;
  #held = true;
  readonly #durable: Promise<void>;

  /** @internal Use `Repository.lock`. */
  constructor(
    repo: Lockable,
    info: LockInfo,
    refreshMs: number,
    durable: Promise<void> = Promise.resolve(),
  ) {
    this.#repo = repo;
    this.#info = info;
    this.#timer = setInterval(() => void this.#refresh(), refreshMs);
    Deno.unrefTimer(this.#timer);
    this.#durable = durable;
    durable.catch(() => {}); // the holder awaits it; never an unhandled rejection meanwhile
  }

  /** Resolves once the lock file's contents are durable (at once unless taken with `syncLater`). */
  get durable(): Promise<void> {
    return this.#durable;
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

/**
 * Take the writer lock of `repo` for `operation`. A stale lock is removed
 * (unless `breakStale` is false); a held one is waited for up to `waitMs`,
 * then `LOCKED` is thrown naming the holder. The holder refreshes the time
 * every `lockStaleMs / 3`.
 */
export async function acquireLock(
  repo: Lockable,
  operation: string,
  options: LockOptions = {},
): Promise<RepoLock> {
  const deadline = Date.now() + (options.waitMs ?? 0);
  const info = newLockInfo(operation);
  for (;;) {
    // Write the lock complete under a temp name, then link it into place: the
    // link is the atomic test-and-set, and a reader never sees a half-written lock.
    const tmp = join(repo.path, `${TEMP_PREFIX}lock-${info.token}`);
    try {
      info.time = new Date().toISOString();
      await repo.fs.writeFile(tmp, lockBytes(info), { sync: !options.syncLater });
      try {
        await repo.fs.link(tmp, repo.lockPath);
        const durable = options.syncLater ? repo.fs.syncFile(repo.lockPath) : undefined;
        return new RepoLock(
          repo,
          info,
          Math.max(1000, Math.floor(repo.lockStaleMs / 3)),
          durable,
        );
      } finally {
        await repo.fs.remove(tmp).catch(() => {});
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists) && errnoOf(e) !== "EEXIST") {
        throw ioError("lock", repo.lockPath, e);
      }
    }
    const holder = await lockHolder(repo);
    if (holder.stale && (options.breakStale ?? true)) {
      // Move it aside first so two breakers cannot both delete a fresh lock.
      const aside = join(repo.path, `${TEMP_PREFIX}stale-lock-${randomHex(6)}`);
      try {
        await repo.fs.rename(repo.lockPath, aside);
        await repo.fs.remove(aside);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw ioError("break lock", repo.lockPath, e);
      }
      continue;
    }
    if (holder.info === null && !holder.exists) continue;
    if (Date.now() >= deadline) {
      const h = holder.info;
      const who = h
        ? `${h.operation} by pid ${h.pid} on ${h.host} since ${h.time}`
        : `an unreadable lock file ${repo.lockPath}`;
      throw new RepoError("LOCKED", `Repository ${repo.path} is locked: ${who}`, {
        path: repo.lockPath,
      });
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Who holds the lock of `repo`, and whether it is stale. */
export async function lockHolder(repo: Lockable): Promise<LockHolder> {
  const st = await repo.fs.stat(repo.lockPath);
  if (st === null) return { exists: false, info: null, stale: false };
  let info: LockInfo | null = null;
  try {
    info = parseLockInfo(await repo.fs.readFile(repo.lockPath));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return { exists: false, info: null, stale: false };
  }
  return { exists: true, info, stale: isStale(info, st.mtimeMs, repo.lockStaleMs) };
}

/**
 * Whether a lock may be broken: older than `staleMs` (by its time, else by
 * `mtimeMs` when unreadable), or held by a dead process of this host.
 */
export function isStale(info: LockInfo | null, mtimeMs: number, staleMs: number): boolean {
  const time = info ? Date.parse(info.time) : mtimeMs;
  const old = Date.now() - time > staleMs;
  const dead = info !== null && info.host === hostname() && info.pid !== Deno.pid &&
    !pidAlive(info.pid);
  return old || dead;
}

/** A new lock's contents for `operation`: this process, this host, now, a random token. */
export function newLockInfo(operation: string): LockInfo {
  return {
    pid: Deno.pid,
    host: hostname(),
    time: new Date().toISOString(),
    operation,
    token: randomHex(8),
  };
}

/** What {@linkcode unlock} needs of a repository (a directory or an S3 lease). */
export interface Unlockable {
  /** Where the repository is. */
  readonly path: string;
  /** Path (or URL) of the lock. */
  readonly lockPath: string;
  /** Who holds the lock. */
  lockHolder(): Promise<LockHolder>;
  /** Remove the lock whoever holds it. */
  breakLock(): Promise<void>;
}

/** Options of {@linkcode unlock}. */
export interface UnlockOptions {
  /** Remove the lock even when its holder may be running (another host's, a live pid). */
  force?: boolean;
  /** Report, remove nothing. @default false */
  dryRun?: boolean;
}

/** The result of {@linkcode unlock}. */
export interface UnlockResult {
  /** The lock removed (or, on a dry run, that would be), or null when there was none. */
  removed: LockHolder | null;
}

/**
 * Remove the lock of `repo`: a stale one (dead pid on this host, or older
 * than `lockStaleMs`) always; one whose holder may still run only with
 * `force`, else `LOCKED` naming the holder. For a lock left by a crashed
 * host on a shared repository, or when an operator knows the holder is gone.
 *
 * @example
 * ```ts ignore
 * import { Repository, unlock } from "./mod.ts";
 * const r = await unlock(await Repository.open("/backup/repo"));
 * console.log(r.removed?.info?.operation ?? "no lock");
 * ```
 */
export async function unlock(
  repo: Unlockable,
  options: UnlockOptions = {},
): Promise<UnlockResult> {
  const holder = await repo.lockHolder();
  if (!holder.exists) return { removed: null };
  if (!holder.stale && !options.force) {
    const h = holder.info;
    const who = h ? `${h.operation} by pid ${h.pid} on ${h.host} since ${h.time}` : "unreadable";
    throw new RepoError(
      "LOCKED",
      `Repository ${repo.path} is locked (${who}) and the holder may be running; ` +
        `give --force if it is not`,
      { path: repo.lockPath },
    );
  }
  if (!options.dryRun) {
    try {
      await repo.breakLock();
    } catch (e) {
      throw ioError("remove", repo.lockPath, e);
    }
  }
  return { removed: holder };
}

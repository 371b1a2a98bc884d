/**
 * The writer lock of an S3 repository: a lease object `lock` (the same JSON
 * as the directory lock: pid, host, time, operation, token), refreshed while
 * held and stale after the repository's `lockStaleMs`. S3 has no atomic
 * create on versioned buckets (Ceph ignores `If-None-Match` there), so the
 * lock is taken by writing it, waiting, and reading it back (restic's way):
 * two writers racing within that window can both believe they hold it. It
 * is therefore advisory: it keeps honest concurrent runs apart and tells an
 * operator who is running, but nothing that keeps data safe depends on it.
 * Garbage collection on S3 keeps chunks younger than a grace period and
 * younger than the oldest running backup (gc.ts).
 *
 * @module
 */

import { RepoError } from "../errors.ts";
import type { RepoFs, RepoStat } from "../fs.ts";
import {
  isStale,
  lockBytes,
  type LockHolder,
  type LockInfo,
  type LockOptions,
  newLockInfo,
  parseLockInfo,
  RepoLock,
} from "../lock.ts";
import type { Backend } from "./backend.ts";

/** What the S3 lock needs of a repository. */
export interface S3Lockable {
  /** `s3://bucket/prefix`. */
  readonly path: string;
  /** URL of the lock object. */
  readonly lockPath: string;
  /** The backend. */
  readonly backend: Backend;
  /** Age after which a lock is stale, in milliseconds. */
  readonly lockStaleMs: number;
}

/** How long to wait before reading a freshly written lock back. */
const SETTLE_MS = 300;

function parse(bytes: Uint8Array | null): LockInfo | null {
  return bytes === null ? null : parseLockInfo(bytes);
}

/**
 * The lock object seen as the one file `RepoLock` refreshes and releases:
 * reads, writes and removes of `lock` only.
 */
function lockFs(repo: S3Lockable): RepoFs {
  const only = (path: string) => {
    if (path !== repo.lockPath) throw new Error(`S3 lock adapter: unexpected ${path}`);
  };
  const unsupported = () => Promise.reject(new Error("not available on S3"));
  return {
    async readFile(path: string): Promise<Uint8Array> {
      only(path);
      const b = await repo.backend.get("lock", 64 * 1024);
      if (b === null) throw new Deno.errors.NotFound(path);
      return b;
    },
    async stat(path: string): Promise<RepoStat | null> {
      only(path);
      const s = await repo.backend.stat("lock");
      return s &&
        { size: s.size, mtimeMs: s.mtimeMs, isFile: true, isDirectory: false, mode: null };
    },
    async remove(path: string): Promise<void> {
      only(path);
      await repo.backend.delete("lock");
    },
    readDir: unsupported,
    writeFile: unsupported,
    syncFile: unsupported,
    rename: unsupported,
    link: unsupported,
    syncDir: unsupported,
    mkdir: unsupported,
  };
}

/** Who holds the S3 lock, and whether it is stale (too old, or a dead pid on this host). */
export async function s3LockHolder(repo: S3Lockable): Promise<LockHolder> {
  const st = await repo.backend.stat("lock");
  if (st === null) return { exists: false, info: null, stale: false };
  const info = parse(await repo.backend.get("lock", 64 * 1024));
  return { exists: true, info, stale: isStale(info, st.mtimeMs, repo.lockStaleMs) };
}

/** Take the advisory S3 lock for `operation` (see the module doc for what it guarantees). */
export async function acquireS3Lock(
  repo: S3Lockable,
  operation: string,
  options: LockOptions = {},
): Promise<RepoLock> {
  const deadline = Date.now() + (options.waitMs ?? 0);
  const info = newLockInfo(operation);
  const bytes = () => lockBytes(info);
  for (;;) {
    const holder = await s3LockHolder(repo);
    if (!holder.exists || (holder.stale && (options.breakStale ?? true))) {
      info.time = new Date().toISOString();
      await repo.backend.put("lock", bytes());
      await new Promise((r) => setTimeout(r, SETTLE_MS));
      const now = parse(await repo.backend.get("lock", 64 * 1024));
      if (now?.token === info.token) {
        const lockable = {
          path: repo.path,
          lockPath: repo.lockPath,
          lockStaleMs: repo.lockStaleMs,
          fs: lockFs(repo),
          writeAtomic: (_path: string, data: Uint8Array) => repo.backend.put("lock", data),
        };
        return new RepoLock(lockable, info, Math.max(1000, Math.floor(repo.lockStaleMs / 3)));
      }
      // Another writer wrote after us: it holds the lock.
    } else if (Date.now() >= deadline) {
      const h = holder.info;
      const who = h
        ? `${h.operation} by pid ${h.pid} on ${h.host} since ${h.time}`
        : `an unreadable lock object ${repo.lockPath}`;
      throw new RepoError("LOCKED", `Repository ${repo.path} is locked: ${who}`, {
        path: repo.lockPath,
      });
    }
    if (Date.now() >= deadline) {
      throw new RepoError("LOCKED", `Repository ${repo.path} is locked by another writer`, {
        path: repo.lockPath,
      });
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

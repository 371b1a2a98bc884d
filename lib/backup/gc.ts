/**
 * Garbage collection: remove chunks no backup references, leftover temporary
 * files, orphan indexes and obsolete failed-run records.
 *
 * @module
 */

import { join } from "node:path";
import { RepoError } from "./errors.ts";
import { isDigestHex, TEMP_PREFIX } from "./format.ts";
import { referencedDigests } from "./index_file.ts";
import { deviceKey, MAX_RUN_RECORD_SIZE, parseFailedRun } from "./manifest.ts";
import { backupIdsIn, readBounded, type Repository } from "./repository.ts";

/** Options of {@linkcode gc}. */
export interface GcOptions {
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
}

/** The result of {@linkcode gc}. */
export interface GcResult {
  /** Chunks still referenced. */
  chunksKept: number;
  /** Unreferenced chunks removed. */
  chunksRemoved: number;
  /** Bytes of removed chunk files. */
  bytesFreed: number;
  /** Temporary files removed. */
  tempFilesRemoved: number;
  /** Index files without a manifest removed. */
  orphanIndexesRemoved: number;
  /** Failed-run records removed. */
  runRecordsRemoved: number;
}

/**
 * Remove every chunk no backup references. Takes the repository lock, which
 * every backup holds for its whole run, so no running backup can be
 * referencing a chunk gc sees as unreferenced. Refuses to run if any
 * manifest or index is unreadable (its references are unknown).
 *
 * @example Prune, then free space
 * ```ts ignore
 * import { gc, Repository } from "./mod.ts";
 * const r = await gc(await Repository.open("/backup/repo"));
 * console.log(r.chunksRemoved, r.bytesFreed);
 * ```
 */
export async function gc(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const lock = await repo.lock("gc", { waitMs: options.lockWaitMs ?? 0 });
  const dry = options.dryRun ?? false;
  const remove = (p: string) => (dry ? Promise.resolve() : repo.fs.remove(p));
  try {
    const result: GcResult = {
      chunksKept: 0,
      chunksRemoved: 0,
      bytesFreed: 0,
      tempFilesRemoved: 0,
      orphanIndexesRemoved: 0,
      runRecordsRemoved: 0,
    };
    const referenced = new Set<string>();
    const names = await repo.fs.readDir(repo.backupsDir);
    const ids = new Set(backupIdsIn(names));
    const newestOf = new Map<string, string>(); // device key -> newest backup id
    for (const id of [...ids].sort()) {
      let index;
      try {
        const m = await repo.readManifest(id);
        newestOf.set(deviceKey(m.device), id);
        index = await repo.readIndex(m);
      } catch (e) {
        throw new RepoError(
          "CORRUPT",
          `gc refuses to run: backup ${id} is unreadable, its chunks are unknown (${
            (e as Error).message
          }); run verify and remove or repair it`,
          { path: repo.manifestPath(id), cause: e },
        );
      }
      for (const hex of referencedDigests(index).keys()) referenced.add(hex);
    }
    for (const n of names) {
      const p = join(repo.backupsDir, n);
      if (n.startsWith(TEMP_PREFIX)) {
        await remove(p);
        result.tempFilesRemoved++;
      } else if (n.endsWith(".index") && !ids.has(n.slice(0, -6))) {
        await remove(p);
        result.orphanIndexesRemoved++;
      }
    }
    for (const n of await repo.fs.readDir(repo.path)) {
      if (n.startsWith(TEMP_PREFIX)) {
        await remove(join(repo.path, n));
        result.tempFilesRemoved++;
      }
    }
    for (const fan of await repo.fs.readDir(repo.chunksDir)) {
      const dir = join(repo.chunksDir, fan);
      let changed = false;
      for (const n of await repo.fs.readDir(dir)) {
        const p = join(dir, n);
        if (n.startsWith(TEMP_PREFIX)) {
          await remove(p);
          result.tempFilesRemoved++;
          changed = true;
        } else if (isDigestHex(n) && !referenced.has(n)) {
          result.bytesFreed += (await repo.fs.stat(p))?.size ?? 0;
          await remove(p);
          result.chunksRemoved++;
          changed = true;
        } else if (isDigestHex(n)) {
          result.chunksKept++;
        }
      }
      if (changed && !dry) await repo.fs.syncDir(dir);
    }
    // Failed-run records matter only until the next backup; keep the newest per device.
    for (const n of await repo.fs.readDir(repo.runsDir)) {
      const p = join(repo.runsDir, n);
      let obsolete = n.startsWith(TEMP_PREFIX);
      if (!obsolete && n.endsWith(".json")) {
        try {
          const bytes = await readBounded(repo.fs, p, MAX_RUN_RECORD_SIZE);
          const device = bytes && parseFailedRun(bytes, p).device;
          const newest = device ? newestOf.get(device) : undefined;
          obsolete = newest !== undefined && n.slice(0, -5) < newest;
        } catch {
          obsolete = true; // unreadable record
        }
      }
      if (obsolete) {
        await remove(p);
        result.runRecordsRemoved++;
      }
    }
    if (!dry) await repo.fs.syncDir(repo.backupsDir);
    return result;
  } finally {
    await lock.release().catch(() => {});
  }
}

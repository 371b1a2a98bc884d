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
import type { LockInfo } from "./lock.ts";

/** Options of {@linkcode gc}. */
export interface GcOptions {
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /**
   * Abort (checked before each file removed): what was removed stays
   * removed, the rest stays; throws `signal.reason` as is.
   */
  signal?: AbortSignal;
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
  /**
   * On a dry run (which takes no lock): the writer holding the lock, whose
   * chunks in flight are counted as unreferenced.
   */
  writer: LockInfo | null;
}

/**
 * Remove every chunk no backup references. Takes the repository lock, which
 * every backup holds for its whole run, so no running backup can be
 * referencing a chunk gc sees as unreferenced (a dry run takes none and
 * names the writer instead). A backup whose manifest is unreadable still
 * counts through its index; one whose index is unreadable makes gc refuse,
 * naming it, until it is removed with {@linkcode forget}. Damaged chunks
 * no backup uses are dropped from the damage record.
 *
 * @example Prune, then free space
 * ```ts ignore
 * import { gc, Repository } from "./mod.ts";
 * const r = await gc(await Repository.open("/backup/repo"));
 * console.log(r.chunksRemoved, r.bytesFreed);
 * ```
 */
export async function gc(repo: Repository, options: GcOptions = {}): Promise<GcResult> {
  const dry = options.dryRun ?? false;
  options.signal?.throwIfAborted();
  // A dry run removes nothing, so it needs no lock and never waits for one.
  const lock = dry ? null : await repo.lock("gc", { waitMs: options.lockWaitMs ?? 0 });
  const remove = (p: string) => {
    options.signal?.throwIfAborted();
    return dry ? Promise.resolve() : repo.fs.remove(p);
  };
  try {
    const result: GcResult = {
      chunksKept: 0,
      chunksRemoved: 0,
      bytesFreed: 0,
      tempFilesRemoved: 0,
      orphanIndexesRemoved: 0,
      runRecordsRemoved: 0,
      writer: null,
    };
    if (dry) {
      const holder = await repo.lockHolder();
      if (holder.info && !holder.stale) result.writer = holder.info;
    }
    const referenced = new Set<string>();
    const names = await repo.fs.readDir(repo.backupsDir);
    const ids = new Set(backupIdsIn(names));
    const newestOf = new Map<string, string>(); // device key -> newest backup id
    for (const id of [...ids].sort()) {
      options.signal?.throwIfAborted();
      // An unreadable manifest does not hide the chunks: the index checks
      // itself. An index that is unreadable, or not the one its manifest
      // names, does; such a backup cannot be restored, and the operator
      // removes it with `forget`.
      let index;
      let m;
      try {
        m = await repo.readManifest(id);
      } catch {
        m = null;
      }
      try {
        if (m) newestOf.set(deviceKey(m.device), id);
        index = m ? await repo.readIndex(m) : await repo.readIndexAlone(id);
      } catch (e) {
        throw new RepoError(
          "CORRUPT",
          `gc cannot tell which chunks backup ${id} uses: ${(e as Error).message}. ` +
            `The backup cannot be restored; remove it with \`blksnap forget ${id}\`, then run gc`,
          { path: repo.indexPath(id), cause: e },
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
    // Damaged chunks no backup uses any more are forgotten with them.
    if (!dry) {
      const damage = await repo.readDamage().catch(() => null);
      if (damage) {
        let dropped = false;
        for (const hex of damage.keys()) {
          if (!referenced.has(hex)) dropped = damage.delete(hex);
        }
        if (dropped) await repo.writeDamage(damage);
      }
      await repo.fs.syncDir(repo.backupsDir);
    }
    return result;
  } finally {
    await lock?.release().catch(() => {});
  }
}

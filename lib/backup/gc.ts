/**
 * Garbage collection: remove chunks no backup references, leftover temporary
 * files, orphan indexes and obsolete failed-run records.
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import { isDigestHex, TEMP_PREFIX } from "./format.ts";
import { referencedDigests } from "./index_file.ts";
import { deviceKey, MAX_RUN_RECORD_SIZE, parseFailedRun } from "./manifest.ts";
import type { LockInfo } from "./lock.ts";
import { backupIdsIn, type Repository } from "./repository.ts";
import { runningBackups } from "./running.ts";
import { RUNNING_SUFFIX } from "./storage/backend.ts";

/** The default grace period on S3: chunks written in the last hour are never removed. */
export const DEFAULT_S3_GRACE_MS = 3_600_000;
/** Clocks of hosts sharing a bucket may differ by this much. */
const CLOCK_SKEW_MS = 5 * 60_000;

/** Options of {@linkcode gc}. */
export interface GcOptions {
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /**
   * Never remove a chunk written less than this many milliseconds ago.
   * @default 3600000 on S3 (whose lock is advisory), 0 for a directory (whose lock is trusted)
   */
  graceMs?: number;
  /**
   * Abort (checked while listing and between batches of removals): what was
   * removed stays removed, the rest stays; throws `signal.reason` as is.
   */
  signal?: AbortSignal;
}

/** Objects removed per batch (one S3 request); the signal is checked between batches. */
const DELETE_BATCH = 200;

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
  /** Failed-run records and dead backups' markers removed. */
  runRecordsRemoved: number;
  /** Unreferenced chunks kept because they are younger than the grace period or a running backup. */
  chunksSpared: number;
  /** Unreferenced chunks kept because Object Lock still retains them. */
  chunksRetained: number;
  /** Unreferenced chunks written at or after this time were spared (`null`: no cut-off). */
  sparedBefore: string | null;
  /** Why every unreferenced chunk was spared this time, or `null`. */
  sparedBecause: string | null;
  /**
   * On a dry run (which takes no lock): the writer holding the lock, whose
   * chunks in flight are counted as unreferenced.
   */
  writer: LockInfo | null;
}

/**
 * Remove every chunk no backup references. Takes the repository lock, which
 * every backup holds for its whole run, so no running backup can be
 * referencing a chunk gc sees as unreferenced. On S3, where that lock is
 * advisory, it also spares chunks younger than `graceMs` and younger than the
 * oldest running backup (`runs/<id>.running`), and chunks Object Lock still
 * retains. A dry run takes no lock and names the writer holding it. A
 * backup whose manifest is unreadable still counts through its index (which
 * checks itself); one whose index is unreadable makes gc refuse, naming it,
 * until it is removed with {@linkcode forget}. Damaged chunks no backup uses
 * are dropped from the damage record.
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
  const s3 = repo.backend.kind === "s3";
  const doomed: string[] = []; // object names to delete, in one batch at the end
  try {
    const result: GcResult = {
      chunksKept: 0,
      chunksRemoved: 0,
      bytesFreed: 0,
      tempFilesRemoved: 0,
      orphanIndexesRemoved: 0,
      runRecordsRemoved: 0,
      chunksSpared: 0,
      chunksRetained: 0,
      sparedBefore: null,
      sparedBecause: null,
      writer: null,
    };
    if (dry) {
      const holder = await repo.lockHolder();
      if (holder.info && !holder.stale) result.writer = holder.info;
    }
    // Chunks a running backup may be about to reference are spared: on S3 the lock is only
    // advisory, so gc keeps every chunk written after the grace cut-off and after the start
    // of the oldest running backup.
    const now = Date.now();
    const graceMs = options.graceMs ?? (s3 ? DEFAULT_S3_GRACE_MS : 0);
    let cutoff = now - graceMs;
    const running = await runningBackups(repo, now);
    for (const r of running) cutoff = Math.min(cutoff, r.startMs - CLOCK_SKEW_MS);
    if (graceMs > 0 || running.length > 0) result.sparedBefore = new Date(cutoff).toISOString();
    const lockDays = repo.config.objectLockDays ?? 0;

    const referenced = new Set<string>();
    const names: string[] = [];
    for await (const o of repo.list("backups/")) names.push(o.name.slice("backups/".length));
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
    // A running backup reuses its parent's chunks: if the parent is gone (pruned meanwhile, or
    // unknown), nothing unreferenced can be known safe to delete this time.
    let parentGone: string | null = null;
    for (const r of running) {
      if (r.parent === null || ids.has(r.parent)) continue;
      parentGone = r.parent === "?"
        ? `backup ${r.id} runs with an unknown parent`
        : `parent ${r.parent} of running backup ${r.id} is gone`;
    }
    if (parentGone) result.sparedBecause = parentGone;
    for (const n of names) {
      if (n.startsWith(TEMP_PREFIX)) {
        doomed.push(`backups/${n}`);
        result.tempFilesRemoved++;
      } else if (n.endsWith(".index") && !ids.has(n.slice(0, -6))) {
        doomed.push(`backups/${n}`);
        result.orphanIndexesRemoved++;
      }
    }
    for await (const o of repo.list("")) {
      if (o.name.startsWith(TEMP_PREFIX)) {
        doomed.push(o.name);
        result.tempFilesRemoved++;
      }
    }
    for await (const o of repo.list("chunks/")) {
      const n = o.name.slice(o.name.lastIndexOf("/") + 1);
      if (n.startsWith(TEMP_PREFIX)) {
        doomed.push(o.name);
        result.tempFilesRemoved++;
      } else if (isDigestHex(n) && !referenced.has(n)) {
        const st = o.mtimeMs === undefined ? await repo.backend.stat(o.name) : null;
        const mtime = o.mtimeMs ?? st?.mtimeMs ?? now;
        const size = o.size ?? st?.size ?? 0;
        if (mtime >= cutoff || parentGone) {
          result.chunksSpared++;
        } else if (lockDays > 0 && mtime + lockDays * 86_400_000 > now) {
          result.chunksRetained++; // Object Lock refuses its deletion until then
        } else {
          doomed.push(o.name);
          result.bytesFreed += size;
          result.chunksRemoved++;
        }
      } else if (isDigestHex(n)) {
        result.chunksKept++;
      }
    }
    // Failed-run records matter only until the next backup; keep the newest per device.
    for await (const { name } of repo.list("runs/")) {
      const n = name.slice("runs/".length);
      let obsolete = n.startsWith(TEMP_PREFIX);
      if (!obsolete && n.endsWith(".json")) {
        try {
          const bytes = await repo.backend.get(name, MAX_RUN_RECORD_SIZE);
          const device = bytes && parseFailedRun(bytes, repo.backend.display(name)).device;
          const newest = device ? newestOf.get(device) : undefined;
          obsolete = newest !== undefined && n.slice(0, -5) < newest;
        } catch {
          obsolete = true; // unreadable record
        }
      } else if (!obsolete && n.endsWith(RUNNING_SUFFIX)) {
        // A marker of a backup that died without removing it.
        obsolete = !running.some((r) => r.name === name);
      }
      if (obsolete) {
        doomed.push(name);
        result.runRecordsRemoved++;
      }
    }
    if (!dry) {
      const refused: { name: string; reason: string }[] = [];
      for (let i = 0; i < doomed.length; i += DELETE_BATCH) {
        options.signal?.throwIfAborted();
        refused.push(...await repo.backend.deleteMany(doomed.slice(i, i + DELETE_BATCH)));
      }
      if (refused.length > 0) {
        throw new RepoError(
          "IO",
          `gc could not remove ${refused.length} object(s), first ${
            repo.backend.display(refused[0].name)
          }: ${refused[0].reason}`,
        );
      }
      await repo.backend.flush();
      // Damaged chunks no backup uses any more are forgotten with them.
      const damage = await repo.readDamage().catch(() => null);
      if (damage) {
        let dropped = false;
        for (const hex of damage.keys()) {
          if (!referenced.has(hex)) dropped = damage.delete(hex);
        }
        if (dropped) await repo.writeDamage(damage);
      }
    }
    return result;
  } finally {
    await lock?.release().catch(() => {});
  }
}

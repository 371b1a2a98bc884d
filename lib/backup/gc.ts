/**
 * Garbage collection: remove chunks no backup references, leftover temporary
 * files, orphan indexes and obsolete failed-run records.
 *
 * @module
 */

import { join } from "node:path";
import { RepoError } from "./errors.ts";
import { bytesEqual, DIGEST_SIZE, isBackupId, isDigestHex, toHex, ZERO_DIGEST } from "./format.ts";
import { readBounded, type Repository, TEMP_PREFIX } from "./repository.ts";

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
    const ids = new Set(
      names.filter((n) => n.endsWith(".json")).map((n) => n.slice(0, -5)).filter(isBackupId),
    );
    const newestOf = new Map<string, string>(); // device key -> newest backup id
    for (const id of [...ids].sort()) {
      let index;
      try {
        const m = await repo.readManifest(id);
        newestOf.set(m.device.id ?? m.device.name, id);
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
      for (let i = 0; i < index.chunkCount; i++) {
        const d = index.digests.subarray(i * DIGEST_SIZE, (i + 1) * DIGEST_SIZE);
        if (!bytesEqual(d, ZERO_DIGEST)) referenced.add(toHex(d));
      }
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
          const bytes = await readBounded(repo.fs, p, 64 * 1024);
          const device = bytes && JSON.parse(new TextDecoder().decode(bytes)).device;
          const newest = typeof device === "string" ? newestOf.get(device) : undefined;
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

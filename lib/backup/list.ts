/**
 * Listing the backups of a repository.
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import { indexName } from "./storage/backend.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import type { BadBackup } from "./types.ts";

/** Options of {@linkcode list}. */
export interface ListOptions {
  /**
   * Also check that each backup's index exists and has the size its manifest
   * implies (one stat per backup; a fast check, not verify). @default false
   */
  checkIndexes?: boolean;
}

/** The result of {@linkcode list}. */
export interface ListResult {
  /** Manifests, oldest first. */
  backups: Manifest[];
  /** Manifests that could not be read (and, with `checkIndexes`, indexes missing or cut). */
  problems: BadBackup[];
}

/**
 * Every backup in the repository, oldest first, with unreadable manifests
 * reported rather than thrown.
 *
 * @example Print id, mode and device of each backup
 * ```ts ignore
 * import { list, Repository } from "./mod.ts";
 * const { backups } = await list(await Repository.open("/backup/repo"));
 * for (const b of backups) console.log(b.id, b.mode, b.device.name);
 * ```
 */
export async function list(repo: Repository, options: ListOptions = {}): Promise<ListResult> {
  const out: ListResult = { backups: [], problems: [] };
  for (const id of await repo.listBackupIds()) {
    let m;
    try {
      m = await repo.readManifest(id);
    } catch (e) {
      if (e instanceof RepoError && e.code === "NOT_FOUND") continue; // removed meanwhile
      out.problems.push({ id, path: repo.manifestPath(id), error: (e as Error).message });
      continue;
    }
    out.backups.push(m);
    if (!options.checkIndexes) continue;
    const path = repo.indexPath(id);
    const size = (await repo.backend.stat(indexName(id)))?.size ?? null;
    const expected = repo.indexObjectSize(m.chunkCount);
    if (size !== expected) {
      const error = size === null
        ? "index missing"
        : `index is ${size} bytes, expected ${expected}`;
      out.problems.push({ id, path, error });
    }
  }
  out.backups.sort((a, b) => a.startTime.localeCompare(b.startTime) || a.id.localeCompare(b.id));
  return out;
}

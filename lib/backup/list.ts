/**
 * Listing the backups of a repository.
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import type { BadBackup } from "./types.ts";

/** The result of {@linkcode list}. */
export interface ListResult {
  /** Manifests, oldest first. */
  backups: Manifest[];
  /** Manifests that could not be read. */
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
export async function list(repo: Repository): Promise<ListResult> {
  const out: ListResult = { backups: [], problems: [] };
  for (const id of await repo.listBackupIds()) {
    try {
      out.backups.push(await repo.readManifest(id));
    } catch (e) {
      if (e instanceof RepoError && e.code === "NOT_FOUND") continue; // removed meanwhile
      out.problems.push({ id, path: repo.manifestPath(id), error: (e as Error).message });
    }
  }
  out.backups.sort((a, b) => a.startTime.localeCompare(b.startTime) || a.id.localeCompare(b.id));
  return out;
}

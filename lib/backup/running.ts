/**
 * Backups in progress on an S3 repository, as their markers
 * (`runs/<id>.running`) tell: written by a backup before its first chunk,
 * naming the parent whose index decides what it does not upload, and
 * removed when it ends. `gc` and `prune` read them because the S3 lock is
 * only advisory (docs/repository-format.md, "S3: what replaces the directory lock").
 *
 * @module
 */

import { backupIdTime, encodeJson, isBackupId } from "./format.ts";
import type { Repository } from "./repository.ts";
import { RUNNING_MAX_AGE_MS, RUNNING_SUFFIX, runningName } from "./storage/backend.ts";

/** A backup in progress. */
export interface RunningBackup {
  /** Object name of its marker. */
  name: string;
  /** Its backup id. */
  id: string;
  /** When it started (from its id), milliseconds since the epoch. */
  startMs: number;
  /** The backup whose index says which chunks it reuses, or `null`. */
  parent: string | null;
}

/** Write the marker of backup `id` (device key `device`, reusing `parent`'s chunks). */
export async function markRunning(
  repo: Repository,
  id: string,
  device: string,
  parent: string | null,
): Promise<void> {
  await repo.backend.put(runningName(id), encodeJson({ id, device, parent }));
}

/**
 * The backups in progress: markers younger than 48 hours (an older one was
 * left by a run that died). A marker that cannot be read counts as running
 * with an unknown parent (`"?"`), so nothing it might need is removed.
 */
export async function runningBackups(repo: Repository, now = Date.now()): Promise<RunningBackup[]> {
  const out: RunningBackup[] = [];
  for await (const { name } of repo.list("runs/")) {
    if (!name.endsWith(RUNNING_SUFFIX)) continue;
    const id = name.slice("runs/".length, -RUNNING_SUFFIX.length);
    if (!isBackupId(id)) continue;
    const startMs = backupIdTime(id);
    if (now - startMs >= RUNNING_MAX_AGE_MS) continue;
    let parent: string | null = "?";
    try {
      const o = JSON.parse(new TextDecoder().decode((await repo.backend.get(name, 4096))!));
      if (o.parent === null || (typeof o.parent === "string" && isBackupId(o.parent))) {
        parent = o.parent;
      }
    } catch {
      // unreadable or gone meanwhile: parent unknown
    }
    out.push({ name, id, startMs, parent });
  }
  return out;
}

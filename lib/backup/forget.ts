/**
 * Removing chosen backups: `forget` takes ids (full, short, prefix or
 * `latest`) and removes their manifests and indexes under the lock, also
 * when a manifest is unreadable (which is how an operator unblocks `gc`).
 * Chunks are freed by the next `gc`.
 *
 * @module
 */

import type { Repository } from "./repository.ts";
import { resolveBackupId, type ResolveOptions } from "./select.ts";

/** Options of {@linkcode forget}. */
export interface ForgetOptions extends ResolveOptions {
  /** Resolve and report, remove nothing (and take no lock). @default false */
  dryRun?: boolean;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Abort (checked before each removal); throws `signal.reason` as is. */
  signal?: AbortSignal;
}

/** The result of {@linkcode forget}. */
export interface ForgetResult {
  /** Full ids removed (or, on a dry run, to be removed), in the order given, each once. */
  removed: string[];
  /** Whether this was a dry run. */
  dryRun: boolean;
}

/**
 * Remove the backups `specs` name. Every spec is resolved before anything is
 * removed, so one bad spec removes nothing. Every backup is logically full:
 * removing one never breaks another.
 *
 * @example Remove the newest backup of /dev/vdb, then free its chunks
 * ```ts ignore
 * import { forget, gc, Repository } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * console.log((await forget(repo, ["latest"], { device: "/dev/vdb" })).removed);
 * await gc(repo);
 * ```
 */
export async function forget(
  repo: Repository,
  specs: readonly string[],
  options: ForgetOptions = {},
): Promise<ForgetResult> {
  const dryRun = options.dryRun ?? false;
  options.signal?.throwIfAborted();
  const lock = dryRun ? null : await repo.lock("forget", { waitMs: options.lockWaitMs ?? 0 });
  try {
    const removed: string[] = [];
    for (const spec of specs) {
      const id = await resolveBackupId(repo, spec, options);
      if (!removed.includes(id)) removed.push(id);
    }
    if (!dryRun) {
      for (const id of removed) {
        options.signal?.throwIfAborted();
        await repo.removeBackup(id);
      }
    }
    return { removed, dryRun };
  } finally {
    await lock?.release().catch(() => {});
  }
}

/**
 * Naming backups the way operators type them: a full id, its last 8 hex
 * digits (the short id `list` shows), any unique prefix of the id, or
 * `latest` (the newest backup, of one device when given).
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import { isBackupId } from "./format.ts";
import { list } from "./list.ts";
import { deviceKey, type Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";

/** Options of {@linkcode resolveBackupId}. */
export interface ResolveOptions {
  /** `latest` means the newest backup of this device (key, id or name). @default any device */
  device?: string;
}

/** The short form of backup id `id`: its last 8 hex digits. */
export function shortId(id: string): string {
  return id.slice(-8);
}

/** True if backup `m` is of `device`: its key, stable id or name. */
export function matchesDevice(m: Pick<Manifest, "device">, device: string): boolean {
  return deviceKey(m.device) === device || m.device.name === device || m.device.id === device;
}

/**
 * The full id `spec` names in `repo`: a full id (which must exist), `latest`,
 * a short id or a unique id prefix. Throws `NOT_FOUND` when nothing matches
 * and `INVALID` when `spec` is malformed or matches several backups. Short
 * ids and prefixes are matched on file names, so they also name a backup
 * whose manifest is unreadable.
 *
 * @example
 * ```ts ignore
 * import { Repository, resolveBackupId } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * console.log(await resolveBackupId(repo, "latest", { device: "/dev/vdb" }));
 * ```
 */
export async function resolveBackupId(
  repo: Repository,
  spec: string,
  options: ResolveOptions = {},
): Promise<string> {
  const s = spec.trim();
  if (s === "latest") {
    const { backups } = await list(repo);
    const of = options.device === undefined
      ? backups
      : backups.filter((b) => matchesDevice(b, options.device!));
    const newest = of.at(-1);
    if (!newest) {
      const whose = options.device === undefined ? "" : ` of ${options.device}`;
      throw new RepoError("NOT_FOUND", `No backup${whose} in ${repo.path}`);
    }
    return newest.id;
  }
  const ids = await repo.listBackupIds();
  if (isBackupId(s)) {
    if (!ids.includes(s)) {
      throw new RepoError("NOT_FOUND", `Backup ${s} not found`, { path: repo.manifestPath(s) });
    }
    return s;
  }
  // A short id (or its start) first; failing that, the start of a full id.
  const isShort = /^[0-9a-f]{4,8}$/.test(s);
  const isPrefix = /^\d{4}[\dTZ-]*[0-9a-f]*$/.test(s);
  if (!isShort && !isPrefix) {
    throw new RepoError(
      "INVALID",
      `Not a backup id: ${JSON.stringify(spec)} (give an id, its last 8 hex digits, or latest)`,
    );
  }
  let found = isShort ? ids.filter((id) => shortId(id).startsWith(s)) : [];
  if (found.length === 0 && isPrefix) found = ids.filter((id) => id.startsWith(s));
  if (found.length === 1) return found[0];
  if (found.length === 0) throw new RepoError("NOT_FOUND", `No backup matches ${s}`);
  throw new RepoError(
    "INVALID",
    `${s} matches ${found.length} backups (${found.slice(0, 3).join(", ")}${
      found.length > 3 ? ", ..." : ""
    }); give more digits`,
  );
}

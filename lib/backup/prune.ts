/**
 * Removing backups by retention policy.
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import { list } from "./list.ts";
import { deviceKey, type Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { runningBackups } from "./running.ts";
import type { BadBackup } from "./types.ts";

/** How many backups to keep, per device. Each rule keeps the newest backup of its period. */
export interface RetentionPolicy {
  /** Keep the newest N backups. @default 0 */
  keepLast?: number;
  /** Keep the newest backup of each of the last N days that have backups (UTC). @default 0 */
  keepDaily?: number;
  /** Keep the newest backup of each of the last N ISO weeks that have backups. @default 0 */
  keepWeekly?: number;
  /** Keep the newest backup of each of the last N months that have backups. @default 0 */
  keepMonthly?: number;
}

/** Options of {@linkcode prune}. */
export interface PruneOptions {
  /** Report what would be removed, remove nothing. @default false */
  dryRun?: boolean;
  /** Only prune backups of this device key (`identity.id ?? name`). @default all devices */
  device?: string;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
}

/** The result of {@linkcode prune}. */
export interface PruneResult {
  /** Kept backups and the rules that keep each. */
  kept: { id: string; reasons: string[] }[];
  /** Removed (or, on a dry run, to-be-removed) backup ids. */
  removed: string[];
  /** Unreadable manifests: never removed by prune. */
  problems: BadBackup[];
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, "0")}`;
}

/**
 * Which of `backups` (one device) a policy keeps, with reasons; pure.
 * Returns a map id → reasons for kept backups.
 */
export function applyRetention(
  backups: readonly Pick<Manifest, "id" | "startTime">[],
  policy: RetentionPolicy,
): Map<string, string[]> {
  const newest = [...backups].sort((a, b) =>
    b.startTime.localeCompare(a.startTime) || b.id.localeCompare(a.id)
  );
  const keep = new Map<string, string[]>();
  const add = (id: string, why: string) => keep.set(id, [...(keep.get(id) ?? []), why]);
  const rule = (n: number | undefined, name: string, bucket: (d: Date) => string) => {
    if (!n || n <= 0) return;
    const seen = new Set<string>();
    for (const b of newest) {
      const k = bucket(new Date(b.startTime));
      if (seen.has(k)) continue;
      if (seen.size >= n) break;
      seen.add(k);
      add(b.id, `${name} ${k}`);
    }
  };
  newest.slice(0, Math.max(0, policy.keepLast ?? 0)).forEach((b, i) => add(b.id, `last ${i + 1}`));
  rule(policy.keepDaily, "daily", (d) => d.toISOString().slice(0, 10));
  rule(policy.keepWeekly, "weekly", isoWeek);
  rule(policy.keepMonthly, "monthly", (d) => d.toISOString().slice(0, 7));
  return keep;
}

/**
 * Remove backups the retention policy does not keep, per device. Takes the
 * repository lock. Removes manifests and indexes only; run {@linkcode gc}
 * afterwards to free chunks. Every backup is logically full, so removing a
 * parent never breaks a kept child.
 *
 * @example Keep 7 daily, 4 weekly and 6 monthly backups
 * ```ts ignore
 * import { prune, Repository } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * const r = await prune(repo, { keepDaily: 7, keepWeekly: 4, keepMonthly: 6 });
 * console.log("removed", r.removed);
 * ```
 */
export async function prune(
  repo: Repository,
  retention: RetentionPolicy,
  options: PruneOptions = {},
): Promise<PruneResult> {
  for (const [k, v] of Object.entries(retention)) {
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new RepoError("INVALID", `Retention ${k} must be a non-negative integer, got ${v}`);
    }
  }
  const total = (retention.keepLast ?? 0) + (retention.keepDaily ?? 0) +
    (retention.keepWeekly ?? 0) + (retention.keepMonthly ?? 0);
  if (total === 0) {
    throw new RepoError("INVALID", "Retention policy keeps nothing; give at least one keep rule");
  }
  const lock = await repo.lock("prune", { waitMs: options.lockWaitMs ?? 0 });
  try {
    const { backups, problems } = await list(repo);
    const groups = new Map<string, Manifest[]>();
    for (const b of backups) {
      const key = deviceKey(b.device);
      if (options.device !== undefined && key !== options.device) continue;
      groups.set(key, [...(groups.get(key) ?? []), b]);
    }
    const result: PruneResult = { kept: [], removed: [], problems };
    // On S3 a running backup (another host: the lock is advisory) reuses its parent's chunks.
    const parents = new Map<string, string>();
    if (repo.backend.kind === "s3") {
      for (const r of await runningBackups(repo)) if (r.parent) parents.set(r.parent, r.id);
    }
    for (const group of groups.values()) {
      const keep = applyRetention(group, retention);
      for (const b of group) {
        const reasons = keep.get(b.id) ??
          (parents.has(b.id) ? [`parent of running backup ${parents.get(b.id)}`] : undefined);
        if (reasons) result.kept.push({ id: b.id, reasons });
        else result.removed.push(b.id);
      }
    }
    if (!options.dryRun) { for (const id of result.removed) await repo.removeBackup(id); }
    return result;
  } finally {
    await lock.release().catch(() => {});
  }
}

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
import { matchesDevice } from "./select.ts";
import type { BadBackup } from "./types.ts";

/** How many backups to keep, per device. Each rule keeps the newest backup of its period. */
export interface RetentionPolicy {
  /** Keep the newest N backups. @default 0 */
  keepLast?: number;
  /** Keep the newest backup of each of the last N hours that have backups (UTC). @default 0 */
  keepHourly?: number;
  /** Keep the newest backup of each of the last N days that have backups (UTC). @default 0 */
  keepDaily?: number;
  /** Keep the newest backup of each of the last N ISO weeks that have backups. @default 0 */
  keepWeekly?: number;
  /** Keep the newest backup of each of the last N months that have backups. @default 0 */
  keepMonthly?: number;
  /** Keep the newest backup of each of the last N years that have backups. @default 0 */
  keepYearly?: number;
  /**
   * Keep every backup taken within this duration before the device's newest
   * backup: `y`ears, `m`onths, `w`eeks, `d`ays and `h`ours, e.g. `7d`,
   * `1y6m`, `36h` (see {@linkcode parseRetentionDuration}). @default none
   */
  keepWithin?: string;
}

/** Options of {@linkcode prune}. */
export interface PruneOptions {
  /** Report what would be removed, remove nothing (and take no lock). @default false */
  dryRun?: boolean;
  /** Only prune backups of this device: its key (`identity.id ?? name`) or its name. @default all */
  device?: string;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Abort (checked before each removal); throws `signal.reason` as is. */
  signal?: AbortSignal;
}

/** The result of {@linkcode prune}. */
export interface PruneResult {
  /** Kept backups and the rules that keep each. */
  kept: { id: string; reasons: string[] }[];
  /** Removed (or, on a dry run, to-be-removed) backup ids. */
  removed: string[];
  /** Unreadable manifests: never removed by prune (`forget` removes one). */
  problems: BadBackup[];
}

/** A retention duration: years, months, weeks, days, hours. */
export interface RetentionDuration {
  /** Years. */
  years: number;
  /** Months. */
  months: number;
  /** Weeks. */
  weeks: number;
  /** Days. */
  days: number;
  /** Hours. */
  hours: number;
}

/**
 * Parse a retention duration such as `7d`, `2w`, `1y6m`, `36h` (restic's
 * `--keep-within` syntax: a sequence of numbers with `y`, `m`, `w`, `d`,
 * `h`). Throws `INVALID` on anything else.
 *
 * @example
 * ```ts
 * import { parseRetentionDuration } from "./prune.ts";
 * console.log(parseRetentionDuration("1y2w").weeks); // 2
 * ```
 */
export function parseRetentionDuration(text: string): RetentionDuration {
  const out: RetentionDuration = { years: 0, months: 0, weeks: 0, days: 0, hours: 0 };
  const names = { y: "years", m: "months", w: "weeks", d: "days", h: "hours" } as const;
  const t = text.trim();
  if (!/^(\d+[ymwdh])+$/.test(t)) {
    throw new RepoError(
      "INVALID",
      `"${text}" is not a duration (numbers with y, m, w, d or h, e.g. 7d, 1y6m, 36h)`,
    );
  }
  for (const [, n, unit] of t.matchAll(/(\d+)([ymwdh])/g)) {
    out[names[unit as keyof typeof names]] += Number(n);
  }
  return out;
}

/** `time` minus `d`, in UTC calendar arithmetic. */
function before(time: Date, d: RetentionDuration): Date {
  const t = new Date(time);
  t.setUTCFullYear(t.getUTCFullYear() - d.years, t.getUTCMonth() - d.months);
  t.setUTCDate(t.getUTCDate() - 7 * d.weeks - d.days);
  t.setUTCHours(t.getUTCHours() - d.hours);
  return t;
}

function isoWeek(d: Date): string {
  const t = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate()));
  const day = t.getUTCDay() || 7;
  t.setUTCDate(t.getUTCDate() + 4 - day);
  const year = t.getUTCFullYear();
  const week = Math.ceil(((t.getTime() - Date.UTC(year, 0, 1)) / 86400000 + 1) / 7);
  return `${year}-W${String(week).padStart(2, "0")}`;
}

const COUNT_RULES = [
  "keepLast",
  "keepHourly",
  "keepDaily",
  "keepWeekly",
  "keepMonthly",
  "keepYearly",
] as const;

/** Throw `INVALID` unless `policy` is well formed and keeps something. */
function checkPolicy(policy: RetentionPolicy): void {
  for (const k of COUNT_RULES) {
    const v = policy[k];
    if (v !== undefined && (!Number.isSafeInteger(v) || v < 0)) {
      throw new RepoError("INVALID", `Retention ${k} must be a non-negative integer, got ${v}`);
    }
  }
  if (policy.keepWithin !== undefined) parseRetentionDuration(policy.keepWithin);
  const counts = COUNT_RULES.reduce((s, k) => s + (policy[k] ?? 0), 0);
  if (counts === 0 && policy.keepWithin === undefined) {
    throw new RepoError("INVALID", "Retention policy keeps nothing; give at least one keep rule");
  }
}

/**
 * Which of `backups` (one device) a policy keeps, with reasons; pure.
 * Returns a map id → reasons for kept backups.
 *
 * @example
 * ```ts
 * import { applyRetention } from "./prune.ts";
 * const keep = applyRetention([
 *   { id: "a", startTime: "2026-01-01T02:00:00.000Z" },
 *   { id: "b", startTime: "2026-01-02T02:00:00.000Z" },
 * ], { keepDaily: 1 });
 * console.log([...keep.keys()]); // ["b"]
 * ```
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
  rule(policy.keepHourly, "hourly", (d) => d.toISOString().slice(0, 13));
  rule(policy.keepDaily, "daily", (d) => d.toISOString().slice(0, 10));
  rule(policy.keepWeekly, "weekly", isoWeek);
  rule(policy.keepMonthly, "monthly", (d) => d.toISOString().slice(0, 7));
  rule(policy.keepYearly, "yearly", (d) => d.toISOString().slice(0, 4));
  if (policy.keepWithin !== undefined && newest.length > 0) {
    const from = before(new Date(newest[0].startTime), parseRetentionDuration(policy.keepWithin));
    for (const b of newest) {
      if (new Date(b.startTime) >= from) add(b.id, `within ${policy.keepWithin.trim()}`);
    }
  }
  return keep;
}

/**
 * Remove backups the retention policy does not keep, per device. Takes the
 * repository lock (a dry run takes none). Removes manifests and indexes
 * only; run {@linkcode gc} afterwards to free chunks. Every backup is
 * logically full, so removing a parent never breaks a kept child.
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
  checkPolicy(retention);
  options.signal?.throwIfAborted();
  const lock = options.dryRun
    ? null
    : await repo.lock("prune", { waitMs: options.lockWaitMs ?? 0 });
  try {
    const { backups, problems } = await list(repo);
    const groups = new Map<string, Manifest[]>();
    for (const b of backups) {
      if (options.device !== undefined && !matchesDevice(b, options.device)) continue;
      const key = deviceKey(b.device);
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
    if (!options.dryRun) {
      for (const id of result.removed) {
        options.signal?.throwIfAborted();
        await repo.removeBackup(id);
      }
    }
    return result;
  } finally {
    await lock?.release().catch(() => {});
  }
}

/**
 * The goals of issue 14 ("Performance: copy-on-write ahead of LVM, ...")
 * as rows of `bench/results/latest.json`: every id here must be measured by
 * a full run of `deno task bench` (bench/run.ts fails otherwise), and
 * docs/benchmarks.md shows each one's ratio against its goal and against the
 * ratio before the work began (the "now" column).
 *
 * @module
 */

import type { BenchResult } from "./_results.ts";

/** One goal: the row's id, the ratio to reach, the ratio when it was set. */
export interface Goal {
  /** The row's `id` in the results. */
  id: string;
  /** What the row compares, in a few words. */
  what: string;
  /** The ratio to reach (ratios are oriented: higher is better). */
  goal: number;
  /** The ratio when the goal was set, or null when the row did not exist. */
  before: number | null;
  /** Whose work moves it: the kernel's copy-on-write and image paths, or the backup flows. */
  area: "kernel" | "backup";
}

/** The goals, in the order. */
export const GOALS: readonly Goal[] = [
  {
    id: "cow.first_touch.vs_none",
    what: "4 KiB random writes on a fresh snapshot vs no snapshot",
    goal: 0.7,
    before: 0.25,
    area: "kernel",
  },
  {
    id: "cow.first_touch.vs_dm_snapshot",
    what: "the same vs dm-snapshot, same chunk size and storage medium",
    goal: 1.5,
    before: 0.62,
    area: "kernel",
  },
  {
    id: "cow.every_copy.vs_limit",
    what: "every write copies a chunk, vs the write plus one read of its chunk",
    goal: 0.75,
    before: null,
    area: "kernel",
  },
  {
    id: "cow.steady.vs_none",
    what: "writes to already copied chunks vs no snapshot",
    goal: 0.95,
    before: 0.8,
    area: "kernel",
  },
  {
    id: "cow.p99_latency.vs_none",
    what: "p99 write latency at queue depth 16 (libaio), first touch",
    goal: 0.5,
    before: null,
    area: "kernel",
  },
  {
    id: "image.read.vs_original",
    what: "1 MiB sequential image reads, half the chunks copied",
    goal: 0.95,
    before: 0.53,
    area: "kernel",
  },
  {
    id: "backup.full.vs_cpu_floor",
    what: "full backup vs SHA-256 + zstd of the same data on all cores",
    goal: 0.75,
    before: 0.28,
    area: "backup",
  },
  {
    id: "backup.full.vs_restic",
    what: "full backup time vs restic",
    goal: 3,
    before: 1.86,
    area: "backup",
  },
  {
    id: "restore.vs_dd",
    what: "restore vs dd bs=4M conv=fsync of the same bytes",
    goal: 0.6,
    before: 0.17,
    area: "backup",
  },
  {
    id: "verify.deep.vs_cpu_floor",
    what: "deep verify vs decompress + hash on all cores",
    goal: 0.9,
    before: 0.42,
    area: "backup",
  },
  {
    id: "incremental.small.vs_floor",
    what: "incremental with 1 MiB changed vs its floor (its fsyncs, measured)",
    goal: 0.85,
    before: 0.5,
    area: "backup",
  },
];

/**
 * What is wrong with a run's ids, as failure messages: a goal row missing,
 * or an id reported twice (a report must say which row is which).
 */
export function idProblems(results: BenchResult[], goals: readonly Goal[] = GOALS): string[] {
  const seen = new Map<string, number>();
  for (const r of results) if (r.id) seen.set(r.id, (seen.get(r.id) ?? 0) + 1);
  const problems: string[] = [];
  const missing = goals.filter((g) => !seen.has(g.id)).map((g) => g.id);
  if (missing.length > 0) problems.push(`goal rows not measured: ${missing.join(", ")}`);
  const twice = [...seen].filter(([, n]) => n > 1).map(([id]) => id);
  if (twice.length > 0) problems.push(`ids reported more than once: ${twice.join(", ")}`);
  return problems;
}

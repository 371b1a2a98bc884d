/**
 * The benchmark result protocol: parsing `BENCH {...}` lines and the
 * markdown table of docs/benchmarks.md. Used by bench/run.ts.
 *
 * @module
 */

/** One metric as a benchmark reports it. */
export interface BenchResult {
  /**
   * Stable name of the row, e.g. `cow.first_touch.vs_none`: what the goals
   * (bench/_goals.ts) and the issues refer to. Dotted: subject, case, peer.
   */
  id?: string;
  /** What is measured, e.g. "4 KiB random write, tracked vs untracked". */
  metric: string;
  /** Unit of `ours` and `peer`. */
  unit: string;
  /** Our figure (median of the repetitions). */
  ours: number;
  /** The peer's or the limit's figure, measured in the same run. */
  peer: number;
  /** What the peer or limit is. */
  peerName: string;
  /** Whether a larger figure is better (throughput) or worse (time). */
  higherIsBetter: boolean;
  /** Repetitions behind each median. */
  reps?: number;
  /** Relative spread (max-min)/median of our figure. */
  spread?: number;
  /** Sizes, devices, kernel, emulation. */
  conditions?: string;
  /** Filled in by this runner: the file that produced the line. */
  source?: string;
  /** Filled in: where it ran, the host or the test VM (cloud kernel, QEMU TCG). */
  where?: string;
  /** Filled in: ours/peer, oriented so that 1.0 is parity and lower is worse. */
  ratio?: number;
}

/** {@linkcode BenchResult.where} of host benchmarks (`bench/*.ts`). */
export const HOST_WHERE = "host";
/** {@linkcode BenchResult.where} of VM benchmarks (`bench/vm/*.sh`). */
export const VM_WHERE = "VM (cloud kernel, QEMU TCG)";

/** The median of repeated measurements (the upper one of an even count). */
export function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** The relative spread (max - min) / median of repeated measurements. */
export function spread(values: number[]): number {
  const m = median(values);
  return m > 0 ? (Math.max(...values) - Math.min(...values)) / m : 0;
}

/** Parses the `BENCH {...}` lines of a benchmark's output. */
export function parseBenchLines(text: string, source: string): BenchResult[] {
  const out: BenchResult[] = [];
  for (const line of text.split("\n")) {
    const at = line.indexOf("BENCH {");
    if (at < 0) continue;
    try {
      const r = JSON.parse(line.slice(at + 6)) as BenchResult;
      if (typeof r.metric !== "string" || !Number.isFinite(r.ours) || !Number.isFinite(r.peer)) {
        continue;
      }
      r.source = source;
      r.where = source.startsWith("vm/") ? VM_WHERE : HOST_WHERE;
      r.ratio = r.peer === 0 || r.ours === 0
        ? NaN
        : (r.higherIsBetter ? r.ours / r.peer : r.peer / r.ours);
      out.push(r);
    } catch {
      // a garbled line (kernel messages on the console): ignored
    }
  }
  return out;
}

/** A figure with three significant digits (or none past the point from 100). */
export function fmt(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (Math.abs(n) >= 100) return n.toFixed(0);
  if (Math.abs(n) >= 10) return n.toFixed(1);
  return n.toPrecision(3);
}

/** The markdown table of a report. */
export function table(rs: BenchResult[]): string {
  const rows = rs.map((r) =>
    `| ${r.id ? `\`${r.id}\`` : ""} | ${r.metric} | ${fmt(r.ours)} ${r.unit} | ${r.peerName}: ${
      fmt(r.peer)
    } ${r.unit} | ${fmt(r.ratio ?? NaN)} | ${r.reps ?? 1}${
      r.spread !== undefined ? `, ±${(r.spread * 100).toFixed(0)}%` : ""
    } | ${r.where ?? ""} | ${r.conditions ?? ""} |`
  );
  return [
    "| id | metric | ours | peer or limit (same run) | ratio | reps, spread | where | conditions |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ...rows,
  ].join("\n");
}

/**
 * `deno task bench`: every benchmark in bench/, host and VM parts, in one go.
 *
 * Each benchmark measures ours and its peer or physical limit side by side in
 * the same run and prints one line per metric:
 *
 * ```text
 * BENCH {"metric":"...","unit":"MiB/s","ours":812,"peer":905,"peerName":"untracked",
 *        "higherIsBetter":true,"reps":5,"spread":0.04,"conditions":"..."}
 * ```
 *
 * Host benchmarks are `bench/*.ts` (but this file and `_*.ts`); VM benchmarks are
 * `bench/vm/*.sh` (but `_*.sh`), run in one boot of the test VM on Debian's cloud kernel (never
 * the debug kernel: KASAN would distort every figure) with the module loaded.
 * Results go to `bench/results/latest.json` and, in full mode, to the table in
 * `docs/benchmarks.md`. `--quick` runs every benchmark on small sizes to check
 * they still work: its numbers mean nothing and are written to
 * `bench/results/quick.json` only.
 *
 * Usage: `deno task bench [--quick] [--only SUBSTRING] [--report-only]`
 * (`--report-only` rewrites docs/benchmarks.md from latest.json, measuring nothing)
 *
 * @module
 */

import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { cpus, totalmem } from "node:os";
import { type BenchResult, fmt, parseBenchLines, table } from "./_results.ts";
import { GOALS, idProblems } from "./_goals.ts";

const repo = fileURLToPath(new URL("..", import.meta.url));

/** The heading from which docs/benchmarks.md is written by hand and kept across runs. */
const HAND_WRITTEN = "\n## Methods and limits";
const quick = Deno.args.includes("--quick");
const onlyIdx = Deno.args.indexOf("--only");
const only = onlyIdx >= 0 ? Deno.args[onlyIdx + 1] : undefined;

async function sh(cmd: string[], env: Record<string, string> = {}): Promise<
  { code: number; out: string }
> {
  const p = await new Deno.Command(cmd[0], {
    args: cmd.slice(1),
    cwd: repo,
    env: { NO_COLOR: "1", DENO_BIN: Deno.execPath(), BENCH_QUICK: quick ? "1" : "0", ...env },
    stdout: "piped",
    stderr: "inherit",
  }).output();
  const out = new TextDecoder().decode(p.stdout);
  await Deno.stdout.write(p.stdout);
  return { code: p.code, out };
}

if (Deno.args.includes("--report-only")) {
  await writeMarkdown(JSON.parse(Deno.readTextFileSync(`${repo}bench/results/latest.json`)));
  Deno.exit(0);
}

const results: BenchResult[] = [];
const failures: string[] = [];

// libblksnap, which the FFI benchmarks load: built here as the test command
// builds it, so a fresh clone runs every benchmark.
if ((await sh(["make", "-s", "-C", "kmod", "lib"])).code !== 0) {
  failures.push("make -C kmod lib failed: the FFI benchmarks cannot load libblksnap");
}

// Host benchmarks
const hostFiles = [...Deno.readDirSync(`${repo}bench`)]
  .filter((e) =>
    e.isFile && e.name.endsWith(".ts") && e.name !== "run.ts" && !e.name.startsWith("_")
  )
  .map((e) => e.name)
  .filter((n) => !only || n.includes(only))
  .sort();
for (const name of hostFiles) {
  console.log(`\n== bench ${name} (host)`);
  const { code, out } = await sh([
    Deno.execPath(),
    "run",
    "-A",
    `bench/${name}`,
    ...(quick ? ["--quick"] : []),
  ]);
  const got = parseBenchLines(out, name);
  if (code !== 0 || got.length === 0) failures.push(`${name}: exit ${code}, ${got.length} results`);
  results.push(...got);
}

// VM benchmarks, one boot of the cloud kernel
const vmDir = `${repo}bench/vm`;
const vmFiles = existsSync(vmDir)
  ? [...Deno.readDirSync(vmDir)].filter((e) =>
    e.isFile && e.name.endsWith(".sh") && !e.name.startsWith("_")
  ).map((e) => e.name)
    .filter((n) => !only || n.includes(only)).sort()
  : [];
if (vmFiles.length > 0) {
  console.log(`\n== bench VM part (cloud kernel): ${vmFiles.join(", ")}`);
  const vmWork = Deno.makeTempDirSync({ prefix: "blksnap-bench-vm-" });
  const { code } = await sh([
    "bash",
    "tests/vm/vm.sh",
    "--kernel",
    "cloud",
    "--timeout",
    quick ? "900" : "5400",
    "run",
    "--",
    "sh",
    "bench/_vm_all.sh",
    quick ? "quick" : "full",
    ...vmFiles,
  ], { BLKSNAP_VM_WORK: vmWork });
  const log = existsSync(`${vmWork}/results.log`)
    ? Deno.readTextFileSync(`${vmWork}/results.log`).replaceAll("\r", "")
    : "";
  Deno.removeSync(vmWork, { recursive: true });
  for (const name of vmFiles) {
    const section = log.split(`BENCH-FILE ${name}\n`)[1]?.split("BENCH-FILE-END")[0] ?? "";
    const got = parseBenchLines(section, `vm/${name}`);
    if (got.length === 0) failures.push(`vm/${name}: no results`);
    results.push(...got);
  }
  if (code !== 0) failures.push(`VM part: exit ${code}`);
}

// Every goal's row must be there, and no id twice (a run of every benchmark only).
if (!only) failures.push(...idProblems(results));

// Report
const cpuModel = cpus()[0]?.model ?? "unknown CPU";
const machine = `${cpus().length} cores (${cpuModel}), ${
  Math.round(totalmem() / 2 ** 30)
} GiB, host kernel ${Deno.osRelease()}`;
const report = {
  date: new Date().toISOString(),
  mode: quick ? "quick" : "full",
  machine,
  vm: "QEMU TCG (software emulation), 2 vCPUs, Debian cloud kernel",
  results,
  failures,
};
Deno.mkdirSync(`${repo}bench/results`, { recursive: true });
const outFile = `${repo}bench/results/${quick ? "quick" : "latest"}.json`;
Deno.writeTextFileSync(outFile, JSON.stringify(report, null, 2) + "\n");

if (!quick) await writeMarkdown(report);

console.log(`\n== ${results.length} results written to ${outFile}`);
if (failures.length > 0) {
  console.log(`benchmarks failed: ${failures.join("; ")}`);
  Deno.exit(1);
}

/** What a report holds (bench/results/*.json). */
interface Report {
  date: string;
  machine: string;
  results: BenchResult[];
  failures: string[];
}

/** The hand-written end of docs/benchmarks.md (from {@linkcode HAND_WRITTEN}), or nothing. */
function handWritten(file: string): string {
  const text = existsSync(file) ? Deno.readTextFileSync(file) : "";
  const at = text.indexOf(HAND_WRITTEN);
  return at < 0 ? "" : text.slice(at);
}

/** Writes docs/benchmarks.md from a full run's report, formatted. */
async function writeMarkdown(report: Report): Promise<void> {
  const furthest = report.results
    .filter((r) => Number.isFinite(r.ratio))
    .sort((a, b) => (a.ratio ?? 0) - (b.ratio ?? 0))
    .slice(0, 5)
    .map((r) => `- ${r.metric}: ${(r.ratio ?? 0).toPrecision(3)} (${r.peerName})`)
    .join("\n");
  const goalRows = GOALS.map((g) => {
    const r = report.results.find((x) => x.id === g.id);
    const now = r?.ratio;
    const met = now === undefined || !Number.isFinite(now)
      ? "not measured"
      : now >= g.goal
      ? "met"
      : "not met";
    return `| \`${g.id}\` | ${g.what} | ${g.before === null ? "-" : fmt(g.before)} | ${
      now === undefined ? "-" : fmt(now)
    } | >= ${fmt(g.goal)} | ${met} | ${r?.where ?? ""} |`;
  }).join("\n");
  const md = `# Benchmarks

Produced by \`deno task bench\` on ${report.date.slice(0, 10)}; raw figures in
\`bench/results/latest.json\`. Each figure is a median, measured side by side with its peer or
limit in the same run. **Ratio**: ours relative to the peer, oriented so that 1.0 is parity and
below 1.0 means we are slower or costlier. Kernel-side figures (sources \`vm/*\`) come from
Debian's cloud kernel in the test VM under QEMU software emulation (TCG), never the debug kernel:
absolute numbers are far below bare metal, the ratios are what carries over (column "where").
Host figures say in their conditions whether the page cache was warm or dropped ("cold").

Machine: ${report.machine}.

## Goals (issue 14)

Ratios are oriented so that higher is better. "Before" is the ratio when the goal was set (from
the issue); "now" is this run's. How each row is measured and what limits a row that is not met
are under "Methods and limits" below the table of all figures.

| id | what | before | now | goal | | where |
| --- | --- | --- | --- | --- | --- | --- |
${goalRows}

## Furthest from parity

${furthest}

## All figures

${table(report.results)}
${
    report.failures.length > 0
      ? `\nBenchmarks that failed in this run: ${report.failures.join("; ")}.\n`
      : ""
  }`;
  const file = `${repo}docs/benchmarks.md`;
  Deno.writeTextFileSync(file, md + handWritten(file));
  await new Deno.Command(Deno.execPath(), { args: ["fmt", "--quiet", file] }).output();
}

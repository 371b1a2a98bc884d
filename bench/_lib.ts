/**
 * Helpers of the host benchmarks: printing `BENCH` lines, timing, running
 * peers (with their wall time and peak RSS from `/usr/bin/time`), dropping a
 * file's pages from the page cache (for cold runs), and deterministic data.
 *
 * @module
 */

import { median, spread } from "./_results.ts";

/** Bytes in a MiB. */
export const MiB = 1024 * 1024;

/** Whether the benchmark runs in `--quick` mode (small sizes, one repetition). */
export const quick: boolean = Deno.args.includes("--quick");

/** One benchmark row as printed; see bench/_results.ts for the fields. */
export interface Row {
  /** Stable dotted name, e.g. `backup.full.vs_restic`. */
  id: string;
  /** What is measured. */
  metric: string;
  /** Unit of ours and peer. */
  unit: string;
  /** Our repetitions (the median is reported). */
  ours: number[];
  /** The peer's or the limit's repetitions. */
  peer: number[];
  /** What the peer or limit is, and what it does that we do not (or the reverse). */
  peerName: string;
  /** Whether a larger figure is better. */
  higherIsBetter: boolean;
  /** Sizes, data, cache state, threads. */
  conditions: string;
}

/** Prints a row as a `BENCH {...}` line (medians, our spread). */
export function emit(row: Row): void {
  console.log(`BENCH ${
    JSON.stringify({
      id: row.id,
      metric: row.metric,
      unit: row.unit,
      ours: median(row.ours),
      peer: median(row.peer),
      peerName: row.peerName,
      higherIsBetter: row.higherIsBetter,
      reps: row.ours.length,
      spread: Number(spread(row.ours).toFixed(3)),
      conditions: row.conditions,
    })
  }`);
}

/** Seconds `fn` takes. */
export async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** What {@linkcode runTimed} measured of a command. */
export interface Timed {
  /** Wall seconds. */
  seconds: number;
  /** Peak resident set in MiB (`/usr/bin/time` %M). */
  rssMiB: number;
}

/**
 * Runs `sh -c script` under `/usr/bin/time` (so stdin redirections cost no
 * CPU of ours), returning its wall time and peak RSS; throws with its stderr
 * if it fails.
 */
export async function runTimed(script: string, env: Record<string, string> = {}): Promise<Timed> {
  const out = await new Deno.Command("/usr/bin/time", {
    args: ["-f", "TIMED %e %M", "sh", "-c", script],
    stdout: "null",
    stderr: "piped",
    env,
  }).output();
  const err = new TextDecoder().decode(out.stderr);
  const m = /TIMED ([\d.]+) (\d+)\s*$/.exec(err);
  if (!out.success || !m) throw new Error(`${script}: ${err.slice(-600)}`);
  return { seconds: Number(m[1]), rssMiB: Number(m[2]) / 1024 };
}

/** Runs `sh -c script`; throws with its stderr if it fails. */
export async function sh(script: string, env: Record<string, string> = {}): Promise<string> {
  const out = await new Deno.Command("sh", { args: ["-c", script], stderr: "piped", env })
    .output();
  if (!out.success) {
    throw new Error(`${script}: ${new TextDecoder().decode(out.stderr).slice(-600)}`);
  }
  return new TextDecoder().decode(out.stdout);
}

/** Whether `cmd` is on the PATH. */
export async function have(cmd: string): Promise<boolean> {
  const o = await new Deno.Command("sh", {
    args: ["-c", `command -v ${cmd}`],
    stdout: "null",
  }).output();
  return o.success;
}

/** Installs restic and borg when missing and we are root (apt-get); quiet. */
export async function ensurePeers(): Promise<void> {
  if ((await have("restic")) && (await have("borg"))) return;
  if (Deno.uid() !== 0) return;
  await new Deno.Command("sh", {
    args: [
      "-c",
      "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq --no-install-recommends restic borgbackup >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends restic borgbackup >/dev/null 2>&1)",
    ],
  }).output();
}

/** The version line of a peer (`restic 0.14.0`, `borg 1.2.4`). */
export async function versionOf(cmd: string): Promise<string> {
  const out = await new Deno.Command(cmd, { args: ["version"], stdout: "piped", stderr: "piped" })
    .output().catch(() => null);
  const text = out ? new TextDecoder().decode(out.stdout) : "";
  if (/restic/.test(text)) return text.split(" ").slice(0, 2).join(" ");
  const b = await new Deno.Command(cmd, { args: ["--version"], stdout: "piped" }).output()
    .catch(() => null);
  return b ? new TextDecoder().decode(b.stdout).trim() : cmd;
}

const libcSymbols = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  fdatasync: { parameters: ["i32"], result: "i32" },
  posix_fadvise: { parameters: ["i32", "i64", "i64", "i32"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

let libc: Deno.DynamicLibrary<typeof libcSymbols> | null = null;
const POSIX_FADV_DONTNEED = 4;

/**
 * Drops the pages of `paths` (files, or every file under a directory) from
 * the page cache: `fdatasync` then `posix_fadvise(DONTNEED)`. Only these
 * files go cold; other processes' caches are left alone (no drop_caches).
 */
export async function evict(...paths: string[]): Promise<void> {
  libc ??= Deno.dlopen("libc.so.6", libcSymbols);
  const one = (path: string): void => {
    const fd = libc!.symbols.open(new TextEncoder().encode(path + "\0"), 0);
    if (fd < 0) throw new Error(`evict: cannot open ${path}`);
    libc!.symbols.fdatasync(fd);
    libc!.symbols.posix_fadvise(fd, 0n, 0n, POSIX_FADV_DONTNEED);
    libc!.symbols.close(fd);
  };
  for (const p of paths) {
    const st = await Deno.stat(p);
    if (st.isFile) one(p);
    else if (st.isDirectory) {
      for await (const e of Deno.readDir(p)) {
        if (e.isFile || e.isDirectory) await evict(`${p}/${e.name}`);
      }
    }
  }
}

/** Fills `buf` with xorshift32 bytes from `seed` (incompressible, deterministic). */
export function fillRandom(buf: Uint8Array, seed: number): void {
  let x = seed >>> 0 || 1;
  const v = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = x >>> 0;
  }
}

/** The number of cores the benchmarks may use (the host's). */
export const cores: number = navigator.hardwareConcurrency;

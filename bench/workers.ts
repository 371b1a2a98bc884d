/**
 * The chunk pipeline on Worker threads (one per core) vs on the calling
 * thread (`workers: 0`), for each flow and each store, side by side in one
 * run: each flow runs both ways back to back, the order alternating between
 * repetitions, so the load other work puts on the machine falls on both
 * alike. Each run's process CPU time (every thread) is recorded too: unlike
 * the wall time it does not depend on what else runs.
 *
 * - `workers.backup_<store>.vs_one_thread`: full backup into a new plain
 *   repository;
 * - `workers.restore_<store>.vs_one_thread`: restore of that backup to a new
 *   file (the bytes are compared with the image once);
 * - `workers.verify_<store>.vs_one_thread`: deep verify (decompress, CRC-32,
 *   SHA-256 of every chunk).
 *
 * `<store>` is `local` (a directory next to the image) or `s3` (the real Ceph
 * RGW of tests/s3/server.sh on loopback, started unless
 * `BLKSNAP_S3_ENDPOINT` is set). The conditions give the cores, the spread of
 * the one-thread figures and the load average before and after: on a shared
 * machine that is what the figures are worth. Prints `BENCH` lines (see
 * bench/run.ts). `--quick`: a 16 MiB image, one repetition.
 *
 * @module
 */

import { backup, FileSource, Repository, restore, verify } from "../lib/backup/mod.ts";
import { syntheticImage } from "./_images.ts";
import { cores, emit, MiB, quick, timeIt } from "./_lib.ts";
import { median, spread } from "./_results.ts";
import { dropBucket, startS3 } from "./_s3.ts";

const size = quick ? 16 * MiB : 128 * MiB;
const reps = quick ? 1 : 7;
const threads = Math.max(2, cores);
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-workers-" });
Deno.env.set("BLKSNAP_CACHE", `${root}/cache`); // S3 index copies: not the user's cache

type Store = "local" | "s3";
type Flow = "backup" | "restore" | "verify";
const stores: Store[] = ["local", "s3"];
const flows: Flow[] = ["backup", "restore", "verify"];
/** MiB/s by store, flow and mode (threads or one thread). */
const mibps = new Map<string, number[]>();

/** Median process CPU seconds per GiB of the runs under `key`. */
const perGiB = (key: string): string => (median(cpu.get(key)!) * 1024 / (size / MiB)).toFixed(2);

const loadavg = async (): Promise<string> =>
  (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

/** Process CPU seconds so far (user + system, every thread): /proc/self/stat. */
async function cpuSeconds(): Promise<number> {
  const f = (await Deno.readTextFile("/proc/self/stat")).split(") ")[1].split(" ");
  return (Number(f[11]) + Number(f[12])) / 100; // utime, stime in clock ticks (USER_HZ 100)
}

/** CPU seconds by store, flow and mode. */
const cpu = new Map<string, number[]>();

/** Seconds (wall) of `fn`, its process CPU seconds recorded under `key`. */
async function measure(key: string, fn: () => Promise<unknown>): Promise<number> {
  const c0 = await cpuSeconds();
  const t = await timeIt(fn);
  cpu.set(key, [...(cpu.get(key) ?? []), (await cpuSeconds()) - c0]);
  return t;
}

/**
 * One repetition on `store`: each flow runs threaded and on one thread back
 * to back (in the order `order` gives), so both meet the same load.
 */
async function runStore(
  store: Store,
  rep: number,
  order: boolean[],
  check: boolean,
): Promise<void> {
  const repos = new Map<boolean, { repo: Repository; where: string; bucket: string; id: string }>();
  try {
    for (const threaded of order) {
      const bucket = `bench-workers-${rep}-${threaded ? "t" : "o"}-${Date.now().toString(36)}`;
      const where = store === "s3" ? `s3://${bucket}/r` : `${root}/repo-${rep}-${threaded}`;
      repos.set(threaded, { repo: await Repository.init(where), where, bucket, id: "" });
    }
    for (const flow of flows) {
      for (const threaded of order) {
        const r = repos.get(threaded)!;
        const workers = threaded ? threads : 0;
        const key = `${store} ${flow} ${threaded}`;
        const out = `${root}/out.img`;
        const seconds = await measure(key, async () => {
          if (flow === "backup") {
            using source = await FileSource.open(image.path, { identity: { name: "bench" } });
            r.id = (await backup(source, r.repo, { workers })).manifest.id;
          } else if (flow === "restore") {
            await restore(r.repo, r.id, out, { workers });
          } else {
            const v = await verify(r.repo, { deep: true, mark: false, workers });
            if (!v.ok) throw new Error(`bench: deep verify of ${r.where} failed`);
          }
        });
        mibps.set(key, [...(mibps.get(key) ?? []), size / MiB / seconds]);
        if (flow === "restore") {
          if (check) await sameBytes(out, image.path);
          await Deno.remove(out);
        }
      }
    }
  } finally {
    for (const r of repos.values()) {
      if (store === "s3") await dropBucket(r.bucket);
      else await Deno.remove(r.where, { recursive: true });
    }
  }
}

/** Throws unless files `a` and `b` hold the same bytes. */
async function sameBytes(a: string, b: string): Promise<void> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  if (x.length !== y.length || !x.every((v, i) => v === y[i])) {
    throw new Error(`bench: the restore ${a} differs from ${b}`);
  }
}

const stopS3 = await startS3();
const image = await syntheticImage(`${root}/disk.img`, size);
try {
  const before = await loadavg();
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? [true, false] : [false, true];
    for (const store of stores) await runStore(store, rep, order, rep === 0);
  }
  const after = await loadavg();
  for (const store of stores) {
    for (const flow of flows) {
      const key = (threaded: boolean): string => `${store} ${flow} ${threaded}`;
      const one = mibps.get(key(false))!;
      emit({
        id: `workers.${flow}_${store}.vs_one_thread`,
        metric: `${flow === "verify" ? "deep verify" : flow} on ${threads} worker threads vs ` +
          `on the calling thread, ${
            store === "s3" ? "S3 (Ceph RGW, loopback)" : "local"
          } repository`,
        unit: "MiB/s",
        ours: mibps.get(key(true))!,
        peer: one,
        peerName: `the same ${flow} with workers: 0 (one thread does the codec)`,
        higherIsBetter: true,
        conditions: `${image.describe}, 4 MiB chunks, plain repository, ${cores} cores, ` +
          `one-thread spread ${spread(one).toFixed(3)}, CPU-s per GiB ${perGiB(key(true))} ` +
          `threaded vs ${perGiB(key(false))} on one thread, load average ${before} before, ` +
          `${after} after; Deno ${Deno.version.deno}`,
      });
    }
  }
  for (const [key, v] of mibps) {
    console.log(
      `  ${key}: ${v.map((x) => x.toFixed(0)).join(", ")} MiB/s, CPU ${perGiB(key)} s/GiB`,
    );
  }
} finally {
  await Deno.remove(root, { recursive: true });
  await stopS3();
}

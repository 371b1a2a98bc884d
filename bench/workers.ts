/**
 * The chunk pipeline on Worker threads (one per core) vs on the calling
 * thread (`workers: 0`), for each flow and each store, side by side in one
 * run: every repetition runs both, in alternating order, so the load other
 * work puts on the machine falls on both alike.
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
import { spread } from "./_results.ts";
import { dropBucket, startS3 } from "./_s3.ts";

const size = quick ? 16 * MiB : 256 * MiB;
const reps = quick ? 1 : 5;
const threads = Math.max(2, cores);
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-workers-" });
Deno.env.set("BLKSNAP_CACHE", `${root}/cache`); // S3 index copies: not the user's cache

type Store = "local" | "s3";
type Flow = "backup" | "restore" | "verify";
const stores: Store[] = ["local", "s3"];
const flows: Flow[] = ["backup", "restore", "verify"];
/** MiB/s by store, flow and mode (threads or one thread). */
const mibps = new Map<string, number[]>();
const add = (store: Store, flow: Flow, threaded: boolean, seconds: number): void => {
  const key = `${store} ${flow} ${threaded}`;
  mibps.set(key, [...(mibps.get(key) ?? []), size / MiB / seconds]);
};

const loadavg = async (): Promise<string> =>
  (await Deno.readTextFile("/proc/loadavg")).split(" ").slice(0, 3).join(" ");

/** One repetition of every flow on `store`, threaded and not, in the order `order` gives. */
async function runStore(
  store: Store,
  rep: number,
  order: boolean[],
  check: boolean,
): Promise<void> {
  for (const threaded of order) {
    const workers = threaded ? threads : 0;
    const bucket = `bench-workers-${rep}-${threaded ? "t" : "o"}-${Date.now().toString(36)}`;
    const where = store === "s3" ? `s3://${bucket}/r` : `${root}/repo-${rep}-${threaded}`;
    const repo = await Repository.init(where);
    try {
      using source = await FileSource.open(image.path, { identity: { name: "bench" } });
      let id = "";
      add(
        store,
        "backup",
        threaded,
        await timeIt(async () => {
          id = (await backup(source, repo, { workers })).manifest.id;
        }),
      );
      const out = `${root}/out.img`;
      add(store, "restore", threaded, await timeIt(() => restore(repo, id, out, { workers })));
      if (check) await sameBytes(out, image.path);
      await Deno.remove(out);
      add(
        store,
        "verify",
        threaded,
        await timeIt(async () => {
          const r = await verify(repo, { deep: true, mark: false, workers });
          if (!r.ok) throw new Error(`bench: deep verify of ${where} failed`);
        }),
      );
    } finally {
      if (store === "s3") await dropBucket(bucket);
      else await Deno.remove(where, { recursive: true });
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
      const one = mibps.get(`${store} ${flow} false`)!;
      emit({
        id: `workers.${flow}_${store}.vs_one_thread`,
        metric: `${flow === "verify" ? "deep verify" : flow} on ${threads} worker threads vs ` +
          `on the calling thread, ${
            store === "s3" ? "S3 (Ceph RGW, loopback)" : "local"
          } repository`,
        unit: "MiB/s",
        ours: mibps.get(`${store} ${flow} true`)!,
        peer: one,
        peerName: `the same ${flow} with workers: 0 (one thread does the codec)`,
        higherIsBetter: true,
        conditions: `${image.describe}, 4 MiB chunks, plain repository, ${cores} cores, ` +
          `one-thread spread ${spread(one).toFixed(3)}, load average ${before} before, ` +
          `${after} after; Deno ${Deno.version.deno}`,
      });
    }
  }
  for (const [key, v] of mibps) console.log(`  ${key}: ${v.map((x) => x.toFixed(0)).join(", ")}`);
} finally {
  await Deno.remove(root, { recursive: true });
  await stopS3();
}

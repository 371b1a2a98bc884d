/**
 * Incremental backups of the synthetic image after small changes, against
 * their floor and against the full backup:
 *
 * - `small`: one 1 MiB run changed; `1pct`, `10pct`: 1 % and 10 % of the
 *   CBT blocks changed, in 1 MiB runs at random offsets;
 * - the floor of an incremental is what it cannot avoid, measured in the same
 *   run: reading the chunks the changes touch (at the measured page-cache
 *   read speed), their SHA-256 + zstd on all cores (bench/_floor.ts), and
 *   the three rounds of `fsync` a crash-safe commit needs (new chunk files,
 *   index and manifest written and synced at once; then the chunk and index
 *   names; then the manifest's name), timed on the repository's file system
 *   with files of the sizes this incremental wrote.
 * - `small` is sampled 5 times per repetition (25 incrementals, each
 *   followed by its own floor). It takes ~20-60 ms, within reach of one
 *   slow `fsync` of another process on the same disk, and the median of 5
 *   swung between 17.5 and 60 ms with the code unchanged; the median of 25
 *   moves only when more than 12 samples are slow. No sample is dropped and
 *   both sides get the same count and statistic, so a slow disk still shows.
 *
 * Prints `BENCH` lines (see bench/run.ts). `--quick`: a 16 MiB image, one
 * repetition.
 *
 * @module
 */

import { backup, FileSource, Repository } from "../lib/backup/mod.ts";
import { CbtMap } from "../lib/cbt_map.ts";
import { CpuFloor, type FloorJob, JobKind, shared } from "./_floor.ts";
import { syntheticImage } from "./_images.ts";
import { cores, emit, fillRandom, MiB, quick, runTimed, sh, timeIt } from "./_lib.ts";

const size = quick ? 16 * MiB : 1024 * MiB;
const reps = quick ? 1 : 5;
/** Samples of the `small` case per repetition (see where it runs). */
const smallSamples = quick ? 1 : 5;
const blockSize = 65536;
const chunkSize = 4 * MiB;
const blockCount = Math.ceil(size / blockSize);
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-incr-" });

function map(changes: number, marks: Uint8Array): CbtMap {
  return new CbtMap({
    deviceCapacity: BigInt(size),
    blockSize,
    blockCount: marks.length,
    generationId: "0b5c8a1e-2f3d-4e6a-9b7c-1d2e3f4a5b6c",
    changesNumber: changes,
  }, marks);
}

/**
 * Seconds of the three `fsync` rounds of a crash-safe commit of `files`
 * new chunk files of the given sizes, an index and a manifest, in `dir`.
 */
async function commitFloor(dir: string, chunkFiles: number[], indexBytes: number): Promise<number> {
  await Deno.mkdir(`${dir}/chunks`, { recursive: true });
  await Deno.mkdir(`${dir}/backups`, { recursive: true });
  const write = async (path: string, bytes: number): Promise<void> => {
    const f = await Deno.open(path, { write: true, createNew: true });
    const buf = new Uint8Array(bytes);
    fillRandom(buf, bytes);
    let done = 0;
    while (done < buf.length) done += await f.write(buf.subarray(done));
    await f.sync();
    f.close();
  };
  const syncDir = async (path: string): Promise<void> => {
    const d = await Deno.open(path);
    await d.sync();
    d.close();
  };
  const t0 = performance.now();
  // 1: every new file's data
  await Promise.all([
    ...chunkFiles.map((n, i) => write(`${dir}/chunks/.tmp-${i}`, n)),
    write(`${dir}/backups/.tmp-index`, indexBytes),
    write(`${dir}/backups/.tmp-manifest`, 1500),
  ]);
  // 2: the names of the chunks and the index
  await Promise.all(
    chunkFiles.map((_, i) => Deno.rename(`${dir}/chunks/.tmp-${i}`, `${dir}/chunks/c${i}`)),
  );
  await Deno.rename(`${dir}/backups/.tmp-index`, `${dir}/backups/b.index`);
  await Promise.all([syncDir(`${dir}/chunks`), syncDir(`${dir}/backups`)]);
  // 3: the manifest's name
  await Deno.rename(`${dir}/backups/.tmp-manifest`, `${dir}/backups/b.json`);
  await syncDir(`${dir}/backups`);
  const s = (performance.now() - t0) / 1000;
  await Deno.remove(dir, { recursive: true });
  return s;
}

let seed = 7;
const rnd = (n: number): number => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % n;
};

try {
  await using floor = await CpuFloor.start(cores);
  const image = await syntheticImage(`${root}/disk.img`, size);
  const ddRead = (await runTimed(`dd if='${image.path}' of=/dev/null bs=4M 2>/dev/null`)).seconds;
  await sh(`cat '${image.path}' >/dev/null`);
  const readSpeed = size / Math.max(ddRead, 1e-6);
  const fullMarks = new Uint8Array(blockCount).fill(1);
  const cases = [
    { id: "small", what: "1 MiB changed", blocks: MiB / blockSize },
    { id: "1pct", what: "1% changed", blocks: Math.round(blockCount / 100) },
    { id: "10pct", what: "10% changed", blocks: Math.round(blockCount / 10) },
  ].map((c) => ({ ...c, times: [] as number[], floors: [] as number[], changed: 0, touched: 0 }));
  const fullTimes: number[] = [];
  let changes = 1;
  for (let r = 0; r < reps; r++) {
    // Each repetition: a full backup, then the cases as a chain of incrementals.
    const repoPath = `${root}/repo-${r}`;
    const repo = await Repository.init(repoPath, { chunkSize });
    {
      using src = await FileSource.open(image.path, { cbt: map(changes, fullMarks) });
      fullTimes.push(await timeIt(() => backup(src, repo)));
    }
    for (const c of cases) {
      // `small` takes ~20-60 ms, so one slow fsync (another process's I/O on the same disk)
      // doubles a sample: it runs `smallSamples` times per repetition, each against its own
      // floor measured right after it, and the row's medians are of all of them.
      for (let k = 0; k < (c.id === "small" ? smallSamples : 1); k++) {
        // Change whole 1 MiB runs (16 CBT blocks) at random places, in place.
        changes++;
        const marks = new Uint8Array(blockCount).fill(1);
        const f = await Deno.open(image.path, { write: true });
        const run = new Uint8Array(16 * blockSize);
        let marked = 0;
        while (marked < c.blocks) {
          const first = rnd(Math.max(1, blockCount - 16)) & ~15;
          fillRandom(run, first + changes * 131 + 1);
          await f.seek(first * blockSize, Deno.SeekMode.Start);
          await f.write(run);
          for (let b = first; b < first + 16 && marked < c.blocks; b++) {
            if (marks[b] !== changes) {
              marks[b] = changes;
              marked++;
            }
          }
        }
        f.close();
        c.changed = marked * blockSize;
        const touched = new Set<number>();
        for (let b = 0; b < blockCount; b++) {
          if (marks[b] === changes) touched.add(Math.floor((b * blockSize) / chunkSize));
        }
        c.touched = touched.size;

        using src = await FileSource.open(image.path, { cbt: map(changes, marks) });
        let stored = 0, fresh = 0;
        c.times.push(
          await timeIt(async () => {
            const res = await backup(src, repo);
            if (res.decision.mode !== "incremental") {
              throw new Error(`expected incremental: ${res.decision.reason}`);
            }
            stored = res.manifest.stats.bytesStored;
            fresh = res.manifest.stats.chunksNew;
          }),
        );

        // The floor of this very incremental: the touched chunks, in memory.
        const data = shared(new Uint8Array(touched.size * chunkSize));
        const jobs: FloorJob[] = [];
        const piece = new Uint8Array(chunkSize);
        for (const i of touched) {
          const n = await src.read(BigInt(i) * BigInt(chunkSize), piece);
          data.set(piece.subarray(0, n), jobs.length * chunkSize);
          jobs.push({ kind: JobKind.Store, offset: jobs.length * chunkSize, length: n });
        }
        const cpu = await floor.run(data, jobs);
        const read = (touched.size * chunkSize) / readSpeed;
        const per = fresh > 0 ? Math.round(stored / fresh) : 0;
        const commit = await commitFloor(
          `${root}/commit-${c.id}-${r}-${k}`,
          Array(fresh).fill(per),
          64 + (size / chunkSize) * 32,
        );
        c.floors.push(cpu + read + commit);
      }
    }
    await Deno.remove(repoPath, { recursive: true });
  }
  for (const c of cases) {
    const cond = `${image.describe}, page cache warm, ${chunkSize / MiB} MiB chunks, zstd 1; ` +
      `${(c.changed / MiB).toFixed(1)} MiB changed in 1 MiB runs, ${c.touched} chunk(s) touched`;
    emit({
      id: `incremental.${c.id}.vs_floor`,
      metric: `incremental backup, ${c.what}, vs its floor`,
      unit: "s",
      ours: c.times,
      peer: c.floors,
      peerName: "floor: read + SHA-256 + zstd of the touched chunks on all cores, plus the " +
        "3 fsync rounds of a crash-safe commit, measured",
      higherIsBetter: false,
      conditions: cond,
    });
    if (c.id !== "small") {
      emit({
        id: `incremental.${c.id}.vs_full`,
        metric: `incremental backup, ${c.what}, vs the full backup`,
        unit: "s",
        ours: c.times,
        peer: fullTimes,
        peerName: "full backup of the same image",
        higherIsBetter: false,
        conditions: cond,
      });
    }
  }
} finally {
  await Deno.remove(root, { recursive: true });
}

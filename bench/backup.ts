/**
 * Backup flows against their peers and limits, on the same image in one run:
 *
 * - full backup vs `restic backup --stdin` and `borg create` of the image;
 * - incremental at 0.1 %, 1 % and 10 % changed vs the full, and vs the floor
 *   (changed bytes at the measured sequential read speed);
 * - restore vs `dd` copying the image; deep verify vs `dd` reading it.
 *
 * The image mixes zeros, compressible text and random bytes. Prints `BENCH`
 * lines (see bench/run.ts). `--quick`: a 16 MiB image, one repetition.
 *
 * @module
 */

import { backup, FileSource, Repository, restore, verify } from "../lib/backup/mod.ts";
import { CbtMap } from "../lib/cbt_map.ts";
import { median, spread } from "./_results.ts";

const quick = Deno.args.includes("--quick");
const MiB = 1024 * 1024;
const size = quick ? 16 * MiB : 1024 * MiB;
const reps = quick ? 1 : 3;
const blockSize = 65536;
const chunkSize = 4 * MiB;
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-" });
const image = `${root}/disk.img`;

/** xorshift32: deterministic bytes. */
function fillRandom(buf: Uint8Array, seed: number): void {
  let x = seed >>> 0 || 1;
  const v = new Uint32Array(buf.buffer, buf.byteOffset, buf.length >>> 2);
  for (let i = 0; i < v.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    v[i] = x >>> 0;
  }
}

async function makeImage(): Promise<void> {
  const f = await Deno.open(image, { write: true, create: true, truncate: true });
  const text = new TextEncoder().encode(
    "Nov 24 03:11:35 host kernel: blk_update_request: I/O of sector 123456 took 12 ms\n",
  );
  const piece = new Uint8Array(MiB);
  for (let at = 0, i = 0; at < size; at += MiB, i++) {
    const kind = i % 4; // zeros, text, text, random
    if (kind === 0) piece.fill(0);
    else if (kind === 3) fillRandom(piece, i + 1);
    else {for (let p = 0; p < MiB; p++) {
        piece[p] = text[(p + i * 7) % text.length] ^ (p % 4096 === 0 ? i & 0xff : 0);
      }}
    await f.write(piece);
  }
  f.close();
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function run(
  cmd: string,
  args: string[],
  opts: { stdin?: string; env?: Record<string, string> } = {},
): Promise<void> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: opts.stdin ? "piped" : "null",
    stdout: "null",
    stderr: "piped",
    env: opts.env,
  }).spawn();
  if (opts.stdin) {
    const f = await Deno.open(opts.stdin);
    await f.readable.pipeTo(child.stdin);
  }
  const out = await child.output();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).slice(0, 400)}`,
    );
  }
}

async function have(cmd: string): Promise<boolean> {
  try {
    const o = await new Deno.Command("sh", { args: ["-c", `command -v ${cmd}`], stdout: "null" })
      .output();
    return o.success;
  } catch {
    return false;
  }
}

async function ensurePeers(): Promise<void> {
  if ((await have("restic")) && (await have("borg"))) return;
  if (Deno.uid() !== 0) return;
  await new Deno.Command("sh", {
    args: [
      "-c",
      "apt-get install -y -qq --no-install-recommends restic borgbackup >/dev/null 2>&1 || (apt-get update -qq && apt-get install -y -qq --no-install-recommends restic borgbackup >/dev/null 2>&1)",
    ],
  }).output();
}

function emit(r: Record<string, unknown>): void {
  console.log(`BENCH ${JSON.stringify(r)}`);
}

function map(changes: number, marks: Uint8Array): CbtMap {
  return new CbtMap({
    deviceCapacity: BigInt(size),
    blockSize,
    blockCount: marks.length,
    generationId: "0b5c8a1e-2f3d-4e6a-9b7c-1d2e3f4a5b6c",
    changesNumber: changes,
  }, marks);
}

await makeImage();
await ensurePeers();
const mibps = (secs: number): number => size / MiB / secs;
const cond = `${size / MiB} MiB image (1/4 zeros, 1/2 text, 1/4 random), ${
  chunkSize / MiB
} MiB chunks, zstd 1, page cache warm`;

// Sequential read speed of the image (the floor's denominator) and dd copy.
const ddRead: number[] = [];
const ddCopy: number[] = [];
for (let r = 0; r < reps; r++) {
  ddRead.push(await timeIt(() => run("dd", [`if=${image}`, "of=/dev/null", "bs=4M"])));
  ddCopy.push(
    await timeIt(() => run("dd", [`if=${image}`, `of=${root}/copy.img`, "bs=4M", "conv=fsync"])),
  );
  await Deno.remove(`${root}/copy.img`);
}
const readSpeed = size / median(ddRead); // bytes/s

// Full backup: ours vs restic vs borg, each into a fresh repository.
const blockCount = Math.ceil(size / blockSize);
const fullMarks = new Uint8Array(blockCount).fill(1);
const ours: number[] = [];
let repoPath = "";
let fullId = "";
for (let r = 0; r < reps; r++) {
  repoPath = `${root}/repo${r}`;
  const repo = await Repository.init(repoPath, { chunkSize });
  using src = await FileSource.open(image, { identity: { name: "bench" }, cbt: map(1, fullMarks) });
  ours.push(
    await timeIt(async () => {
      fullId = (await backup(src, repo)).manifest.id;
    }),
  );
}
emit({
  metric: "full backup throughput",
  unit: "MiB/s",
  ours: mibps(median(ours)),
  peer: mibps(median(ddRead)),
  peerName: "dd read of the image (limit)",
  higherIsBetter: true,
  reps,
  spread: spread(ours),
  conditions: cond,
});
if (await have("restic")) {
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const env = {
      RESTIC_PASSWORD: "bench",
      RESTIC_REPOSITORY: `${root}/restic${r}`,
      RESTIC_CACHE_DIR: `${root}/rcache`,
    };
    await run("restic", ["init", "--repository-version", "2"], { env });
    t.push(
      await timeIt(() =>
        run("restic", ["backup", "--stdin", "--stdin-filename", "disk.img"], { stdin: image, env })
      ),
    );
  }
  emit({
    metric: "full backup time vs restic",
    unit: "s",
    ours: median(ours),
    peer: median(t),
    peerName: "restic 0.14 backup --stdin (repo v2, zstd auto)",
    higherIsBetter: false,
    reps,
    spread: spread(ours),
    conditions: cond,
  });
}
if (await have("borg")) {
  const t: number[] = [];
  for (let r = 0; r < reps; r++) {
    const env = {
      BORG_REPO: `${root}/borg${r}`,
      BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK: "yes",
      BORG_BASE_DIR: `${root}/bbase`,
    };
    await run("borg", ["init", "-e", "none"], { env });
    t.push(
      await timeIt(() =>
        run("borg", ["create", "-C", "zstd,1", "::a", "-"], { stdin: image, env })
      ),
    );
  }
  emit({
    metric: "full backup time vs borg",
    unit: "s",
    ours: median(ours),
    peer: median(t),
    peerName: "borg 1.2 create -C zstd,1 (stdin)",
    higherIsBetter: false,
    reps,
    spread: spread(ours),
    conditions: cond,
  });
}

// Incrementals: change p% of the CBT blocks, in 1 MiB runs at random places.
let seed = 7;
const rnd = (n: number): number => {
  seed = (seed * 1103515245 + 12345) >>> 0;
  return seed % n;
};
for (const pct of [0.1, 1, 10]) {
  const times: number[] = [];
  let changedBytes = 0;
  for (let r = 0; r < reps; r++) {
    const repo = await Repository.init(`${root}/inc${pct}-${r}`, { chunkSize });
    {
      using src = await FileSource.open(image, {
        identity: { name: "bench" },
        cbt: map(1, fullMarks),
      });
      await backup(src, repo);
    }
    const marks = new Uint8Array(blockCount).fill(1);
    const target = Math.max(1, Math.round(blockCount * pct / 100));
    const f = await Deno.open(image, { write: true });
    const run16 = new Uint8Array(16 * blockSize);
    let marked = 0;
    while (marked < target) {
      const first = rnd(Math.max(1, blockCount - 16));
      fillRandom(run16, first + r * 131 + 1);
      await f.seek(first * blockSize, Deno.SeekMode.Start);
      await f.write(run16);
      for (let b = first; b < first + 16 && marked < target; b++) {
        if (marks[b] !== 2) {
          marks[b] = 2;
          marked++;
        }
      }
    }
    f.close();
    changedBytes = marked * blockSize;
    using src = await FileSource.open(image, { identity: { name: "bench" }, cbt: map(2, marks) });
    times.push(
      await timeIt(async () => {
        const res = await backup(src, repo);
        if (res.decision.mode !== "incremental") {
          throw new Error(`expected incremental: ${res.decision.reason}`);
        }
      }),
    );
  }
  emit({
    metric: `incremental, ${pct}% changed, vs full`,
    unit: "s",
    ours: median(times),
    peer: median(ours),
    peerName: "full backup of the same image",
    higherIsBetter: false,
    reps,
    spread: spread(times),
    conditions: `${cond}; changes in 1 MiB runs at random offsets`,
  });
  emit({
    metric: `incremental, ${pct}% changed, vs floor`,
    unit: "s",
    ours: median(times),
    peer: changedBytes / readSpeed,
    peerName: "floor: changed bytes / measured read speed",
    higherIsBetter: false,
    reps,
    spread: spread(times),
    conditions: `${cond}; ${(changedBytes / MiB).toFixed(1)} MiB changed`,
  });
}

// Restore and deep verify of the full backup vs dd.
const repo = await Repository.open(repoPath);
const restoreT: number[] = [];
const verifyT: number[] = [];
for (let r = 0; r < reps; r++) {
  restoreT.push(await timeIt(() => restore(repo, fullId, `${root}/restored.img`)));
  await Deno.remove(`${root}/restored.img`);
  verifyT.push(
    await timeIt(async () => {
      const rep = await verify(repo, { deep: true });
      if (!rep.ok) throw new Error("deep verify failed");
    }),
  );
}
emit({
  metric: "restore time vs dd copy",
  unit: "s",
  ours: median(restoreT),
  peer: median(ddCopy),
  peerName: "dd bs=4M conv=fsync of the image",
  higherIsBetter: false,
  reps,
  spread: spread(restoreT),
  conditions: cond,
});
emit({
  metric: "deep verify time vs dd read",
  unit: "s",
  ours: median(verifyT),
  peer: median(ddRead),
  peerName: "dd read of the image",
  higherIsBetter: false,
  reps,
  spread: spread(verifyT),
  conditions: cond,
});

await Deno.remove(root, { recursive: true });

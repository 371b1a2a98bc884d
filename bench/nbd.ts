/**
 * Serving a backup point over NBD against restoring it, on the same backup
 * in one run: sequential reads of the whole device through NBD (`nbdcopy`
 * from the in-process server to `null:`, and to a file on tmpfs) vs
 * `restore` of the same backup to a new file on tmpfs (its nearest to
 * /dev/null: the target's writes cost a memory copy). Both skip the zero
 * chunks (block status / sparse target). The time to the first file after
 * `blksnap mount` needs the kernel's nbd driver: bench/vm/nbd_mount.sh.
 *
 * Prints `BENCH` lines (see bench/run.ts). `--quick`: a 16 MiB image, one
 * repetition. Needs nbdcopy (libnbd-bin), installed on demand as root.
 *
 * @module
 */

import { backup, FileSource, Repository, restore } from "../lib/backup/mod.ts";
import { serveBackupPoint } from "../lib/nbd/mod.ts";
import { median, spread } from "./_results.ts";

const quick = Deno.args.includes("--quick");
const MiB = 1024 * 1024;
const size = quick ? 16 * MiB : 512 * MiB;
const reps = quick ? 1 : 3;
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-nbd-" });
const shm = await Deno.makeTempDir({ dir: "/dev/shm", prefix: "blksnap-bench-nbd-" });

function emit(r: Record<string, unknown>): void {
  console.log(`BENCH ${JSON.stringify(r)}`);
}

async function ensureNbdcopy(): Promise<void> {
  const have = await new Deno.Command("sh", { args: ["-c", "command -v nbdcopy"], stdout: "null" })
    .output();
  if (have.success) return;
  if (Deno.uid() !== 0) throw new Error("nbdcopy missing: sudo apt-get install -y libnbd-bin");
  await new Deno.Command("sh", {
    args: [
      "-c",
      "apt-get install -y -qq --no-install-recommends libnbd-bin >/dev/null 2>&1 || " +
      "(apt-get update -qq && apt-get install -y -qq --no-install-recommends libnbd-bin >/dev/null)",
    ],
  }).output();
}

/** 4 MiB pieces: zeros, log text, log text, random (a quarter of the chunks are holes). */
async function makeImage(path: string): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const text = new TextEncoder().encode(
    "Dec  1 03:11:35 host kernel: nbd0: detected capacity change from 0 to 1048576\n",
  );
  const piece = new Uint8Array(4 * MiB);
  let x = 7;
  for (let at = 0, i = 0; at < size; at += piece.length, i++) {
    const kind = i % 4;
    if (kind === 0) piece.fill(0);
    else if (kind === 3) {
      for (let p = 0; p < piece.length; p++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        piece[p] = x & 0xff;
      }
    } else {
      for (let p = 0; p < piece.length; p++) {
        piece[p] = text[(p + i * 7) % text.length] ^ (p % 4096 === 0 ? i & 0xff : 0);
      }
    }
    await f.write(piece.subarray(0, Math.min(piece.length, size - at)));
  }
  f.close();
}

async function timeIt(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

async function nbdcopy(uri: string, dest: string): Promise<void> {
  const out = await new Deno.Command("nbdcopy", { args: [uri, dest], stderr: "piped" }).output();
  if (!out.success) throw new Error(`nbdcopy: ${new TextDecoder().decode(out.stderr)}`);
}

try {
  await ensureNbdcopy();
  const image = `${root}/disk.img`;
  await makeImage(image);
  const repo = await Repository.init(`${root}/repo`);
  let id: string;
  {
    using source = await FileSource.open(image);
    id = (await backup(source, repo)).manifest.id;
  }
  const served = await serveBackupPoint(repo, id, { socket: `${root}/nbd.sock` });
  const uri = served.uri;
  const restoreT: number[] = [];
  const nullT: number[] = [];
  const fileT: number[] = [];
  try {
    await nbdcopy(uri, "null:"); // warm the page cache for both sides alike
    for (let r = 0; r < reps; r++) {
      const target = `${shm}/restored.img`;
      restoreT.push(await timeIt(() => restore(repo, id, target)));
      await Deno.remove(target);
      nullT.push(await timeIt(() => nbdcopy(uri, "null:")));
      const copy = `${shm}/nbdcopy.img`;
      fileT.push(await timeIt(() => nbdcopy(uri, copy)));
      await Deno.remove(copy);
    }
  } finally {
    await served.close();
  }
  const mib = size / MiB;
  const conditions = `${mib} MiB image (1/4 zero chunks, 1/2 text, 1/4 random), 4 MiB chunks, ` +
    "zstd 1, repository in the page cache, nbdcopy defaults (4 connections, block status)";
  const restoreRate = mib / median(restoreT);
  const rows = [
    ["nbd.seq_read.vs_restore", "sequential read through NBD (nbdcopy to null:)", nullT],
    ["nbd.copy_to_file.vs_restore", "NBD copy to a tmpfs file (nbdcopy)", fileT],
  ] as const;
  for (const [id, what, times] of rows) {
    emit({
      id,
      metric: `${what} vs blksnap restore (to tmpfs)`,
      unit: "MiB/s",
      ours: +(mib / median([...times])).toFixed(1),
      peer: +restoreRate.toFixed(1),
      peerName: "restore of the same backup",
      higherIsBetter: true,
      reps,
      spread: +spread([...times]).toFixed(3),
      conditions,
    });
  }
} finally {
  await Deno.remove(root, { recursive: true }).catch(() => {});
  await Deno.remove(shm, { recursive: true }).catch(() => {});
}

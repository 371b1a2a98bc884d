/**
 * The measuring half of bench/vm/backup_live.sh, in one Deno process (Deno
 * starts in about a minute under TCG): full backups of DEVICE from a
 * snapshot with `backupDevices` (what `blksnap backup --device` runs), alone
 * and while fio writes 4 KiB random blocks to DEVICE, and fio alone for as
 * long as a backup took. Prints one JSON line per repetition:
 * `{"idle":s,"busy":s,"writerBusy":MiB/s,"writerAlone":MiB/s}`.
 *
 * Usage: `deno run -A bench/vm/_backup_live.ts DEVICE REPS`
 *
 * @module
 */

import { backupDevices, Repository } from "../../lib/backup/mod.ts";

const [device, repsArg] = Deno.args;
const reps = Number(repsArg ?? 1);
const repoPath = await Deno.makeTempDir({ prefix: "live-repo-" });
const repo = await Repository.init(repoPath);

async function backupSeconds(): Promise<number> {
  const t0 = performance.now();
  const r = await backupDevices([device], repo, {
    diffStorage: "/dev/shm",
    limit: 1n << 30n,
    full: true,
  });
  if (!r.ok) throw new Error(`backup failed: ${r.devices[0]?.error}`);
  return (performance.now() - t0) / 1000;
}

/** Starts fio writing 4 KiB random blocks to the device; resolves to MiB/s once stopped. */
function writer(seconds?: number): { stop: () => void; bw: Promise<number> } {
  const child = new Deno.Command("fio", {
    args: [
      "--name=w",
      `--filename=${device}`,
      "--rw=randwrite",
      "--bs=4k",
      "--direct=1",
      `--runtime=${seconds ?? 3600}`,
      "--time_based",
      "--minimal",
    ],
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const bw = child.output().then((o) => {
    const fields = new TextDecoder().decode(o.stdout).trim().split(";");
    return Number(fields[47]) / 1024; // terse v3: write bandwidth, KiB/s
  });
  return { stop: () => child.kill("SIGINT"), bw };
}

try {
  await backupSeconds(); // warm-up: JIT, the tracker's first attach
  for (let r = 0; r < reps; r++) {
    const idle = await backupSeconds();
    const w = writer();
    await new Promise((res) => setTimeout(res, 1000));
    const busy = await backupSeconds();
    w.stop();
    const writerBusy = await w.bw;
    const writerAlone = await writer(Math.max(1, Math.round(busy))).bw;
    console.log(JSON.stringify({ idle, busy, writerBusy, writerAlone }));
  }
} finally {
  await Deno.remove(repoPath, { recursive: true });
}

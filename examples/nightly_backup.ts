/**
 * Nightly incremental backup of several block devices, with retention.
 *
 * All devices are snapshotted at the same instant; each is backed up in
 * full the first night (or whenever the CBT cursor says so, with the reason
 * printed) and incrementally after that. Retention and garbage collection
 * run only after a night where every device succeeded, so a failing device
 * never loses its older backups.
 *
 * ```sh
 * deno run -A examples/nightly_backup.ts --repo /backup/repo --diff-storage /var/tmp \
 *   --limit 4G --keep-daily 7 --keep-weekly 4 --keep-monthly 6 /dev/vdb /dev/vdc
 * ```
 *
 * Sizes take `K`, `M`, `G`, `T` suffixes. `--help` prints the usage.
 * Exit status: 0 all devices backed up, 1 a device failed, 2 bad usage.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseSize } from "../mod.ts";
import { backupDevices, gc, prune, RepoError, Repository } from "../lib/backup/mod.ts";

const USAGE = "usage: nightly_backup.ts --repo DIR --diff-storage PATH [--limit SIZE] " +
  "[--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] DEVICE...";
const HELP = `${USAGE}

Back up DEVICEs from one snapshot (incremental when the CBT allows), then keep
the newest backup of the last N days, ISO weeks and months per device
(defaults 7, 4, 6; --keep-last N keeps the newest N too) and free unused
chunks. The repository is created on the first run.

  --limit SIZE   most the difference storage may grow to, e.g. 4G (default 4G)`;

function usage(problem: string): never {
  console.error(`${USAGE}\nnightly_backup.ts: ${problem}`);
  Deno.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      "help": { type: "boolean", short: "h" },
      "repo": { type: "string" },
      "diff-storage": { type: "string" },
      "limit": { type: "string", default: "4G" },
      "keep-last": { type: "string", default: "0" },
      "keep-daily": { type: "string", default: "7" },
      "keep-weekly": { type: "string", default: "4" },
      "keep-monthly": { type: "string", default: "6" },
    },
  });
} catch (e) {
  usage((e as Error).message);
}
const { values: opt, positionals: devices } = parsed;
if (opt.help) {
  console.log(HELP);
  Deno.exit(0);
}
if (!opt.repo || !opt["diff-storage"] || devices.length === 0) {
  console.error(USAGE);
  Deno.exit(2);
}
let limit: bigint;
try {
  limit = parseSize(opt.limit);
} catch (e) {
  usage(`--limit: ${(e as Error).message}`);
}
const count = (name: string, text: string): number => {
  if (!/^\d+$/.test(text)) usage(`--${name}: "${text}" is not a count`);
  return Number(text);
};
const keep = {
  keepLast: count("keep-last", opt["keep-last"]),
  keepDaily: count("keep-daily", opt["keep-daily"]),
  keepWeekly: count("keep-weekly", opt["keep-weekly"]),
  keepMonthly: count("keep-monthly", opt["keep-monthly"]),
};

// Open the repository, creating it on the first night.
let repo: Repository;
try {
  repo = await Repository.open(opt.repo);
} catch (e) {
  if (!(e instanceof RepoError && e.code === "NOT_FOUND")) throw e;
  repo = await Repository.init(opt.repo);
  console.log(`created repository ${opt.repo}`);
}

// One snapshot of all devices; one backup per device. SIGINT/SIGTERM stop
// it cleanly: the snapshot is destroyed and the lock released.
const stop = new AbortController();
for (const s of ["SIGINT", "SIGTERM"] as const) {
  Deno.addSignalListener(s, () => stop.abort(new Error(`interrupted by ${s}`)));
}
const run = await backupDevices(devices, repo, {
  diffStorage: opt["diff-storage"],
  limit,
  signal: stop.signal,
});
for (const d of run.devices) {
  if (d.result) {
    const m = d.result.manifest;
    console.log(
      `${d.device}: ${m.mode} ${m.id}: read ${m.stats.bytesRead} B, stored ` +
        `${m.stats.bytesStored} B (${d.result.decision.reason})`,
    );
  } else {
    console.error(`${d.device}: FAILED: ${d.error instanceof Error ? d.error.message : d.error}`);
  }
}
if (!run.ok) Deno.exit(stop.signal.aborted ? 130 : 1);

// Retention per device, then free the chunks no kept backup uses.
const pruned = await prune(repo, keep, { signal: stop.signal });
const freed = await gc(repo, { signal: stop.signal });
console.log(
  `retention: kept ${pruned.kept.length}, removed ${pruned.removed.length}; ` +
    `gc freed ${freed.bytesFreed} B in ${freed.chunksRemoved} chunk(s)`,
);
Deno.exit(0); // the signal listeners would keep the process alive

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
 * # crontab: 0 2 * * *
 * deno run -A examples/nightly_backup.ts --repo /backup/repo --diff-storage /var/tmp \
 *   --limit 4G --keep-daily 7 --keep-weekly 4 --keep-monthly 6 /dev/vdb /dev/vdc
 * ```
 *
 * Exit status: 0 all devices backed up, 1 a device failed, 2 bad usage.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { backupDevices, gc, prune, RepoError, Repository } from "../lib/backup/mod.ts";

const USAGE = "usage: nightly_backup.ts --repo DIR --diff-storage PATH [--limit BYTES] " +
  "[--keep-last N] [--keep-daily N] [--keep-weekly N] [--keep-monthly N] DEVICE...";

const { values: opt, positionals: devices } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "repo": { type: "string" },
    "diff-storage": { type: "string" },
    "limit": { type: "string", default: String(4 << 30) }, // bytes
    "keep-last": { type: "string", default: "0" },
    "keep-daily": { type: "string", default: "7" },
    "keep-weekly": { type: "string", default: "4" },
    "keep-monthly": { type: "string", default: "6" },
  },
});
if (!opt.repo || !opt["diff-storage"] || devices.length === 0) {
  console.error(USAGE);
  Deno.exit(2);
}

// Open the repository, creating it on the first night.
let repo: Repository;
try {
  repo = await Repository.open(opt.repo);
} catch (e) {
  if (!(e instanceof RepoError && e.code === "NOT_FOUND")) throw e;
  repo = await Repository.init(opt.repo);
  console.log(`created repository ${opt.repo}`);
}

// One snapshot of all devices; one backup per device.
const run = await backupDevices(devices, repo, {
  diffStorage: opt["diff-storage"],
  limit: BigInt(opt.limit),
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
if (!run.ok) Deno.exit(1);

// Retention per device, then free the chunks no kept backup uses.
const pruned = await prune(repo, {
  keepLast: Number(opt["keep-last"]),
  keepDaily: Number(opt["keep-daily"]),
  keepWeekly: Number(opt["keep-weekly"]),
  keepMonthly: Number(opt["keep-monthly"]),
});
const freed = await gc(repo);
console.log(
  `retention: kept ${pruned.kept.length}, removed ${pruned.removed.length}; ` +
    `gc freed ${freed.bytesFreed} B in ${freed.chunksRemoved} chunk(s)`,
);

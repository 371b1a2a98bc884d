/**
 * Print what changed on a device since a given backup, and what the next
 * incremental backup would read.
 *
 * A snapshot is taken (and destroyed right away) to freeze the CBT map up to
 * now; the blocks whose change number is above the backup's cursor are the
 * changes. Extra snapshots do not disturb later incrementals: the map keeps
 * every change above the cursor.
 *
 * ```sh
 * deno run -A examples/changed_since.ts --repo /backup/repo --diff-storage /var/tmp \
 *   /dev/vdb 20261124T020000123Z-0a1b2c3d      # or "latest"
 * ```
 *
 * `--limit` takes sizes such as `256M`; `--help` prints the usage.
 * Exit status: 0 printed, 1 failed, 2 bad usage, 3 the next backup must be full.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { parseSize, Session } from "../mod.ts";
import {
  chunksOfExtents,
  decideBackupMode,
  deviceIdentity,
  deviceKey,
  list,
  Repository,
} from "../lib/backup/mod.ts";

const USAGE = "usage: changed_since.ts --repo DIR --diff-storage PATH [--limit SIZE] " +
  "DEVICE BACKUP-ID|latest";

function usage(problem: string): never {
  console.error(`${USAGE}\nchanged_since.ts: ${problem}`);
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
      "limit": { type: "string", default: "256M" },
    },
  });
} catch (e) {
  usage((e as Error).message);
}
const { values: opt, positionals } = parsed;
if (opt.help) {
  console.log(
    `${USAGE}\n\nWhat changed on DEVICE since a backup (a short-lived snapshot ` +
      "freezes the CBT map), and how many chunks the next incremental reads.",
  );
  Deno.exit(0);
}
const [device, id] = positionals;
if (!opt.repo || !opt["diff-storage"] || !device || !id || positionals.length !== 2) {
  console.error(USAGE);
  Deno.exit(2);
}
let limit: bigint;
try {
  limit = parseSize(opt.limit);
} catch (e) {
  usage(`--limit: ${(e as Error).message}`);
}

const repo = await Repository.open(opt.repo);
// Backups chain by the device's stable id (its path for older backups).
const key = deviceKey(await deviceIdentity(device));
const backups = (await list(repo)).backups.filter((b) =>
  deviceKey(b.device) === key || b.device.name === device
);
const base = id === "latest" ? backups.at(-1) : backups.find((b) => b.id === id);
if (!base) throw new Error(`no backup ${id} of ${device} in ${opt.repo}`);
if (!base.cbt) {
  console.log(`backup ${base.id} was taken without CBT: the next backup is full`);
  Deno.exit(3);
}

// Freeze the map up to now.
await using session = await Session.start({
  devices: [device],
  diffStorage: opt["diff-storage"],
  limit,
});
const map = session.cbtMap(device);
// The backup flows' own rule: a new generation, a changes number that went
// back (the map wrapped at 255: after it the numbers restart at 1 in a new
// generation's map, and "above the cursor" would select nothing), another
// block size or capacity all mean a full backup.
const decision = decideBackupMode({
  chunkSize: base.chunkSize,
  capacity: map.info.deviceCapacity,
  cbt: {
    generationId: map.info.generationId,
    changesNumber: map.info.changesNumber,
    blockSize: map.info.blockSize,
    deviceCapacity: map.info.deviceCapacity,
  },
  parent: {
    id: base.id,
    capacity: base.device.capacity,
    chunkSize: base.chunkSize,
    cbt: base.cbt,
    verification: base.verification,
  },
});
if (decision.mode === "full") {
  console.log(`${decision.reason}: the next backup is full`);
  Deno.exitCode = 3; // not Deno.exit(): the session must be closed first
} else {
  const since = base.cbt.changesNumber;
  const extents = map.changedExtents(since);
  for (const e of extents) console.log(`changed offset=${e.offset} length=${e.length}`);
  const chunks = chunksOfExtents(extents, map.info.deviceCapacity, base.chunkSize);
  console.log(
    `${device}: ${map.changedBytes(since)} bytes in ${extents.length} extent(s) changed since ` +
      `${base.id} (changes ${since} -> ${map.info.changesNumber}); an incremental reads ` +
      `${chunks.length} of ${base.chunkCount} chunk(s)`,
  );
}

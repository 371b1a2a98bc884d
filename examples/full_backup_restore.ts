/**
 * One-off full backup of a live block device, restored to an image file.
 *
 * The device is snapshotted, backed up in full whatever its CBT says, and
 * the backup is restored to FILE. While the snapshot still exists the
 * snapshot image is hashed, so the script can say whether the restored file
 * is byte-for-byte the device as it was at the snapshot.
 *
 * ```sh
 * deno run -A examples/full_backup_restore.ts --repo /backup/repo \
 *   --diff-storage /var/tmp /dev/vdb /var/tmp/vdb.img
 * ```
 *
 * Sizes take `K`, `M`, `G`, `T` suffixes. `--help` prints the usage.
 * Exit status: 0 restored and equal, 1 failed or different, 2 bad usage.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { parseSize } from "../mod.ts";
import { backupDevices, RepoError, Repository, restore } from "../lib/backup/mod.ts";

const USAGE =
  "usage: full_backup_restore.ts --repo DIR --diff-storage PATH [--limit SIZE] DEVICE FILE";

function usage(problem: string): never {
  console.error(`${USAGE}\nfull_backup_restore.ts: ${problem}`);
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
      "limit": { type: "string", default: "1G" },
    },
  });
} catch (e) {
  usage((e as Error).message);
}
const { values: opt, positionals } = parsed;
if (opt.help) {
  console.log(
    `${USAGE}\n\nFull backup of DEVICE from a snapshot, restored to FILE and compared ` +
      "with the snapshot image.\n  --limit SIZE   difference storage limit, e.g. 1G (default 1G)",
  );
  Deno.exit(0);
}
const [device, target] = positionals;
if (!opt.repo || !opt["diff-storage"] || !device || !target || positionals.length !== 2) {
  console.error(USAGE);
  Deno.exit(2);
}
let limit: bigint;
try {
  limit = parseSize(opt.limit);
} catch (e) {
  usage(`--limit: ${(e as Error).message}`);
}

/** SHA-256 of a file or device, read in 1 MiB blocks. */
async function sha256(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const block of file.readable) hash.update(block);
  return hash.digest("hex");
}

const repo = await Repository.open(opt.repo).catch(async (e) => {
  if (e instanceof RepoError && e.code === "NOT_FOUND") return await Repository.init(opt.repo!);
  throw e;
});

let imageHash = "";
const run = await backupDevices([device], repo, {
  diffStorage: opt["diff-storage"],
  limit,
  full: true,
  // The image is still there: remember what the device looked like.
  beforeDestroy: async ([taken]) => {
    imageHash = await sha256(taken.imagePath);
  },
});
const [outcome] = run.devices;
if (!outcome.result) throw outcome.error;
const { manifest } = outcome.result;
console.log(
  `backup ${manifest.id}: ${manifest.stats.bytesRead} B read, ` +
    `${manifest.stats.bytesStored} B stored`,
);

await restore(repo, manifest.id, target);
const restoredHash = await sha256(target);
console.log(`restored to ${target}`);
console.log(`snapshot image sha256 ${imageHash}`);
console.log(`restored file  sha256 ${restoredHash}`);
if (restoredHash !== imageHash) {
  console.error("the restored file differs from the snapshot");
  Deno.exit(1);
}
console.log("the restored file equals the device as it was at the snapshot");

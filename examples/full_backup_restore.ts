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
 * Exit status: 0 restored and equal, 1 failed or different, 2 bad usage.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { backupDevices, RepoError, Repository, restore } from "../lib/backup/mod.ts";

const { values: opt, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "repo": { type: "string" },
    "diff-storage": { type: "string" },
    "limit": { type: "string", default: String(1 << 30) },
  },
});
const [device, target] = positionals;
if (!opt.repo || !opt["diff-storage"] || !device || !target || positionals.length !== 2) {
  console.error("usage: full_backup_restore.ts --repo DIR --diff-storage PATH DEVICE FILE");
  Deno.exit(2);
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
  limit: BigInt(opt.limit),
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

// vm-tags: kernels, userland
/**
 * Backup points mounted through the kernel's NBD driver, as an operator runs
 * it: live ext4 and XFS file systems are backed up from a snapshot (a writer
 * running), `blksnap mount` mounts each backup point read-only, and every
 * file (type, mode, size, content, link target) must equal what the snapshot
 * image held; `blksnap umount` leaves no nbd device connected, no socket,
 * no server process, no record. (Partitions and file restore: suite 48.)
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { backupDevices, type Manifest, Repository } from "../../../lib/backup/mod.ts";
import { detachQuietly, loopDevice, sh } from "./40-helpers.ts";
import { assertNothingLeft, cli, type Entry, populate, tree } from "./_nbd_helpers.ts";

/**
 * Back up the live file system on `dev` (mounted at `mnt`, a writer busy on
 * it) and return the backup with the tree its snapshot image held.
 */
async function backupLive(
  dev: string,
  mnt: string,
  repo: Repository,
  work: string,
  imageMount: string[],
): Promise<{ manifest: Manifest; held: Map<string, Entry> }> {
  const writer = new Deno.Command("sh", {
    args: [
      "-c",
      // A steady trickle: the file system is live, the emulated CPU not saturated.
      `trap 'exit 0' TERM; i=0; while :; do dd if=/dev/urandom of=${mnt}/w$((i % 8)) ` +
      `bs=64k count=$((i % 4 + 1)) conv=fsync 2>/dev/null; i=$((i + 1)); sleep 0.2; done`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let held = new Map<string, Entry>();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const run = await backupDevices([dev], repo, {
      diffStorage: work,
      limit: 256n << 20n,
      beforeDestroy: async ([t]) => {
        const at = join(work, "image");
        await Deno.mkdir(at, { recursive: true });
        await sh("mount", ...imageMount, t.imagePath, at);
        try {
          held = await tree(at);
        } finally {
          await sh("umount", at);
        }
      },
    });
    if (!run.devices[0].result) throw run.devices[0].error;
    return { manifest: run.devices[0].result.manifest, held };
  } finally {
    writer.kill();
    await writer.status;
    await detachQuietly(dev);
  }
}

async function mountedTreeEquals(
  repo: string,
  id: string,
  held: Map<string, Entry>,
  work: string,
): Promise<{ fsType: string; options: string[] }> {
  const dir = join(work, "restore-mnt");
  await Deno.mkdir(dir, { recursive: true });
  const out = JSON.parse(await cli("--json", "mount", "-r", repo, id, dir));
  try {
    assert.match(out.nbdDevice, /^\/dev\/nbd\d+$/);
    const seen = await tree(dir);
    assert.ok(seen.size > 30, `${seen.size} entries`);
    assert.deepEqual(seen, held);
    // Read-only: nothing can be written there.
    await assert.rejects(Deno.writeTextFile(join(dir, "x"), "no"));
  } finally {
    await cli("umount", dir);
  }
  await assertNothingLeft();
  return out as { fsType: string; options: string[] };
}

/** The file system made on a loop device, and the options both its snapshot image and its backup point mount with. */
const FILESYSTEMS = {
  ext4: { mib: 48, mkfs: ["mkfs.ext4", "-q", "-F"], options: ["ro", "noload"] },
  // mkfs.xfs refuses less than 300 MiB unless told it is a test (xfsprogs'
  // fstests knob): 64 MiB keeps the backup short under emulation.
  xfs: { mib: 64, mkfs: ["mkfs.xfs", "-q", "-f"], options: ["ro", "norecovery", "nouuid"] },
} as const;

/**
 * A live `fs` (files, a writer trickling) backed up from a snapshot; its
 * backup point mounted with `blksnap mount` shows every file as the
 * snapshot image held it; `blksnap umount` leaves nothing.
 */
async function liveBackupPointMounts(fs: keyof typeof FILESYSTEMS, seed: number): Promise<void> {
  const spec = FILESYSTEMS[fs];
  await using loop = await loopDevice(spec.mib);
  const mnt = join(loop.dir, "mnt");
  const [mkfs, ...args] = spec.mkfs;
  const made = await new Deno.Command(mkfs, {
    args: [...args, loop.dev],
    env: { TEST_DIR: "/tmp", TEST_DEV: loop.dev, QA_CHECK_FS: "1" },
    stderr: "piped",
  }).output();
  assert.ok(made.success, new TextDecoder().decode(made.stderr));
  await Deno.mkdir(mnt);
  await sh("mount", loop.dev, mnt);
  try {
    await populate(mnt, seed);
    const repoPath = join(loop.dir, "repo");
    const repo = await Repository.init(repoPath, { chunkSize: 1 << 20 });
    const { manifest, held } = await backupLive(loop.dev, mnt, repo, loop.dir, [
      "-t",
      fs,
      "-o",
      spec.options.join(","),
    ]);
    assert.ok(held.has("data/deep/er/big") && held.get("data/link")?.link === "../etc/app/config");
    const m = await mountedTreeEquals(repoPath, manifest.id, held, loop.dir);
    assert.equal(m.fsType, fs);
    assert.deepEqual(m.options, spec.options);
  } finally {
    await sh("umount", mnt).catch(() => {});
  }
}

Deno.test("a live ext4 backup point mounts (ro,noload) with every file as its snapshot image held; umount leaves nothing", () =>
  liveBackupPointMounts("ext4", 1));

// The original stays mounted: the same XFS UUID is mounted twice.
Deno.test("a live XFS backup point mounts (ro,norecovery,nouuid) next to its mounted original", () =>
  liveBackupPointMounts("xfs", 2));

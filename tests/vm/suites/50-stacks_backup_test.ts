// vm-tags: kernels
/**
 * Backups of the device stacks servers run, with the real module and the
 * backup flow of `blksnap backup` (`backupDevices`), while writers keep
 * writing: LVM (a PV on a partition plus a second PV; linear, striped and
 * thin LVs), LUKS2 (dm-crypt with a key file) on a partition, and md raid1
 * over two loop devices. In turn the LVs, the PV partition and the whole disk
 * under them, the LUKS mapping and the md array each get a full and
 * incremental backups; every backup restores byte-equal to the
 * snapshot image it was read from, and a restored image of a mounted ext4
 * checks clean (the take froze it). The tools run without udev: LVM's and
 * libdevmapper's udev-less settings make the device nodes themselves.
 *
 * Sizes are small (8-40 MiB devices, at most 3 backups a chain) so the suite
 * stays within its time budget on the debug kernel.
 *
 * @module
 */

import assert from "node:assert/strict";
import { backupDevices, type DeviceBackupOutcome } from "../../../lib/backup/backup_devices.ts";
import { type Manifest, Repository, restore } from "../../../lib/backup/mod.ts";
import { detachQuietly, randomBytes, sh, sha256File, waitForBlockDevice } from "./40-helpers.ts";

const CHUNK = 256 << 10;

// LVM without udev: it makes the device nodes itself, monitors nothing and
// keeps no metadata backups; thin pools without the thin_check tools.
await Deno.mkdir("/etc/lvm", { recursive: true });
await Deno.writeTextFile(
  "/etc/lvm/lvm.conf",
  `devices { obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 monitoring = 0 }
global { thin_check_executable = "" thin_repair_executable = "" use_lvmpolld = 0 }
backup { backup = 0 archive = 0 }
`,
);
// libdevmapper (cryptsetup) without udev: it makes the /dev/mapper nodes.
Deno.env.set("DM_DISABLE_UDEV", "1");
// Modules on the cloud kernel, built in on the debug one. dm-crypt's
// xts(aes) needs ecb: the guest's kernel cannot load it on demand.
for (const m of ["dm-crypt", "dm-thin-pool", "raid1", "xts", "ecb", "algif_skcipher"]) {
  await sh("modprobe", m).catch(() => {});
}

/** A scratch directory, loop devices over files in it and what to undo, all gone on dispose. */
interface Scratch extends AsyncDisposable {
  dir: string;
  /** A loop device over a fresh file of `mib` MiB, partitions scanned with `partitions`. */
  loop(mib: number, partitions?: boolean): Promise<string>;
  /** Run `step` on dispose, before the steps registered earlier. */
  undo(step: () => Promise<unknown>): void;
}

async function scratch(): Promise<Scratch> {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-stacks-" });
  const steps: (() => Promise<unknown>)[] = [];
  return {
    dir,
    async loop(mib: number, partitions = false): Promise<string> {
      const file = await Deno.makeTempFile({ dir, suffix: ".img" });
      {
        using f = await Deno.open(file, { write: true });
        await f.truncate(mib << 20);
      }
      const dev = (await sh("losetup", "-f")).trim();
      await sh("losetup", ...(partitions ? ["-P"] : []), dev, file);
      steps.push(() => sh("losetup", "-d", dev));
      return dev;
    },
    undo(step: () => Promise<unknown>): void {
      steps.push(step);
    },
    async [Symbol.asyncDispose](): Promise<void> {
      for (const step of steps.reverse()) await step().catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** `disk` with one partition over all but its first MiB; the partition's node. */
async function partitioned(disk: string, mib: number): Promise<string> {
  await sh("cbt_tool", "mkpart", disk, "2048", String((mib - 1) * 2048));
  return await waitForBlockDevice(`${disk}p1`, 10);
}

/**
 * One shell loop running every write of `scripts` in turn, then pausing a
 * second, until stopped; `stop()` returns once it has. Under TCG every
 * process a writer starts costs the backup CPU: a loop per writer without
 * the pause made the suite ten times as slow.
 */
function writers(...scripts: string[]): { stop(): Promise<void> } {
  const child = new Deno.Command("sh", {
    // On TERM the loop ends after the write in progress, so no mount holds
    // an open file once `stop()` returns.
    args: [
      "-c",
      `trap 'exit 0' TERM; i=0; while :; do ${scripts.join("; ")}; i=$((i + 1)); sleep 1; done`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  return {
    async stop(): Promise<void> {
      child.kill();
      await child.status;
    },
  };
}

/** fsync'd file writes of varying size on a mounted filesystem. */
function fileWriter(mnt: string): string {
  return `dd if=/dev/urandom of=${mnt}/w$((i % 7)) bs=64k count=$((i % 4 + 1)) conv=fsync 2>/dev/null`;
}

/** Raw O_DIRECT writes of 64 KiB at varying offsets in `mib` MiB of `dev` from MiB `from`. */
function rawWriter(dev: string, mib: number, from = 0): string {
  return `dd if=/dev/urandom of=${dev} bs=64k count=1 seek=$((${from} * 16 + (i * 37) % (${mib} * 16))) ` +
    `oflag=direct conv=notrunc 2>/dev/null`;
}

/** A line on the guest's console: deno test's TAP reporter drops test output. */
function note(text: string): void {
  try {
    Deno.writeTextFileSync(
      "/dev/console",
      `50-stacks: ${text.replaceAll("\n", "\n50-stacks: ")}\n`,
    );
  } catch {
    // no console
  }
}

function manifestOf(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

/**
 * A full and `incrementals` incremental backups of `devices` (one snapshot
 * per run) while the writers run; each backup restores to the sha256 of the
 * snapshot image it was read from, and the restored images of the devices in
 * `ext4` hold a clean filesystem. The trackers are detached after. Returns a
 * line for the log.
 */
async function chain(
  devices: string[],
  dir: string,
  incrementals: number,
  ext4: string[] = [],
): Promise<string> {
  const started = Date.now();
  const repo = await Repository.init(`${dir}/repo`, { chunkSize: CHUNK });
  const points: { manifests: Manifest[]; imageHashes: string[] }[] = [];
  try {
    for (let k = 0; k <= incrementals; k++) {
      let imageHashes: string[] = [];
      const run = await backupDevices(devices, repo, {
        diffStorage: dir,
        limit: 128n << 20n,
        beforeDestroy: async (taken) => {
          imageHashes = [];
          for (const t of taken) imageHashes.push(await sha256File(t.imagePath));
        },
      });
      assert.ok(run.ok, `${devices} backup ${k}: ${run.devices.map((d) => d.error)}`);
      points.push({ manifests: run.devices.map(manifestOf), imageHashes });
    }
  } finally {
    for (const dev of devices) await detachQuietly(dev);
  }
  const backedUp = Date.now();
  const read: string[] = [];
  for (const [i, dev] of devices.entries()) {
    const manifests = points.map((p) => p.manifests[i]);
    assert.deepEqual(
      manifests.map((m) => m.mode),
      ["full", ...Array(incrementals).fill("incremental")],
      `${dev}: the chain`,
    );
    for (let k = 1; k <= incrementals; k++) {
      assert.equal(manifests[k].parent, manifests[k - 1].id, `${dev}: parent of ${k}`);
    }
    for (const [k, m] of manifests.entries()) {
      const target = `${dir}/restored.img`;
      await restore(repo, m.id, target);
      assert.equal(
        await sha256File(target),
        points[k].imageHashes[i],
        `${dev} point ${k} (${m.mode})`,
      );
      if (ext4.includes(dev)) await sh("e2fsck", "-fn", target);
      await Deno.remove(target);
    }
    read.push(
      `${dev} ${manifests.map((m) => m.stats.chunksRead).join("+")}/${
        manifests[0].stats.chunksTotal
      }`,
    );
  }
  await Deno.remove(repo.path, { recursive: true });
  return `chunks read: ${read.join(", ")}; backups ${backedUp - started} ms, restores ${
    Date.now() - backedUp
  } ms`;
}

/**
 * LVM on a PV partition of a fresh 20 MiB disk (the linear LV and half the
 * striped one) and a second PV (the other half, the thin pool).
 */
async function lvmStack(
  s: Scratch,
): Promise<{ disk: string; pv1: string; lin: string; str: string; thin: string }> {
  const disk = await s.loop(20, true);
  const pv1 = await partitioned(disk, 20);
  const pv2 = await s.loop(24);
  await sh("lvm", "pvcreate", "-qq", pv1, pv2);
  await sh("lvm", "vgcreate", "-qq", "vg50", pv1, pv2);
  s.undo(async () => {
    await sh("lvm", "vgchange", "-qq", "-an", "vg50");
    await sh("lvm", "vgremove", "-qq", "-ff", "vg50");
    await sh("lvm", "pvremove", "-qq", pv1, pv2);
  });
  await sh("lvm", "lvcreate", "-qq", "-L", "12M", "-n", "lin", "vg50", pv1);
  await sh("lvm", "lvcreate", "-qq", "-i", "2", "-I", "64k", "-L", "8M", "-n", "str", "vg50");
  // The pool (data, metadata and its spare) on the second PV.
  await sh("lvm", "lvcreate", "-qq", "-L", "4M", "-T", "vg50/pool", pv2);
  await sh("lvm", "lvcreate", "-qq", "-V", "8M", "-T", "vg50/pool", "-n", "thin");
  return {
    disk,
    pv1,
    lin: await waitForBlockDevice("/dev/mapper/vg50-lin", 10),
    str: await waitForBlockDevice("/dev/mapper/vg50-str", 10),
    thin: await waitForBlockDevice("/dev/mapper/vg50-thin", 10),
  };
}

/** LUKS2 with a key file on the partition of a fresh disk, opened. */
async function cryptStack(s: Scratch): Promise<string> {
  const disk = await s.loop(40, true);
  const part = await partitioned(disk, 40);
  const key = `${s.dir}/key`;
  await Deno.writeFile(key, randomBytes(64, 51));
  // PBKDF2 with few iterations: argon2's memory and time are too much here.
  await sh(
    "cryptsetup",
    "luksFormat",
    "-q",
    "--type",
    "luks2",
    "--pbkdf",
    "pbkdf2",
    "--pbkdf-force-iterations",
    "1000",
    "--key-file",
    key,
    part,
  );
  await sh("cryptsetup", "open", "--key-file", key, part, "crypt50");
  s.undo(() => sh("cryptsetup", "close", "crypt50"));
  return await waitForBlockDevice("/dev/mapper/crypt50", 10);
}

/** md raid1 over two fresh loop devices, running. */
async function mdStack(s: Scratch): Promise<string> {
  const a = await s.loop(24);
  const b = await s.loop(24);
  await sh(
    "mdadm",
    "--create",
    "/dev/md50",
    "--run",
    "--quiet",
    "--level=1",
    "--raid-devices=2",
    "--metadata=1.2",
    "--assume-clean",
    a,
    b,
  );
  s.undo(async () => {
    await sh("mdadm", "--stop", "/dev/md50");
    await sh("mdadm", "--zero-superblock", a, b);
  });
  return await waitForBlockDevice("/dev/md50", 10);
}

/** An ext4 of `mib` MiB at the start of `dev`, mounted on a fresh directory. */
async function mountExt4(s: Scratch, dev: string, mib: number): Promise<string> {
  const mnt = await Deno.makeTempDir({ dir: s.dir, prefix: "mnt-" });
  await sh("mkfs.ext4", "-q", dev, `${mib}M`);
  await sh("mount", dev, mnt);
  s.undo(() => sh("umount", mnt));
  return mnt;
}

Deno.test("LVM (linear, striped, thin LVs on a PV partition), LUKS2 with a key file on a partition and md raid1 on loop devices, under file and raw writers: the LVs with the LUKS mapping, the PV partition with the md array, then the whole disk back up full + incremental and restore to their snapshot images", async () => {
  const started = Date.now();
  await using s = await scratch();
  const lvm = await lvmStack(s);
  const lvmDone = Date.now();
  const crypt = await cryptStack(s);
  const cryptDone = Date.now();
  const md = await mdStack(s);
  // ext4 on the linear LV; on the LUKS mapping and the md array in their
  // first 16 MiB, with a raw writer in the 4 MiB after it. The thin writer
  // stays within 2 MiB of its 4 MiB pool: a full pool would queue writes.
  const mounts = [
    await mountExt4(s, lvm.lin, 12),
    await mountExt4(s, crypt, 16),
    await mountExt4(s, md, 16),
  ];
  await Deno.writeFile(`${mounts[0]}/base.bin`, randomBytes(1 << 20, 50));
  const load = writers(
    ...mounts.map(fileWriter),
    rawWriter(lvm.str, 8),
    rawWriter(lvm.thin, 2),
    rawWriter(crypt, 4, 16),
    rawWriter(md, 4, 16),
  );
  s.undo(() => load.stop());
  note(
    `set up: LVM ${lvmDone - started} ms, LUKS ${cryptDone - lvmDone} ms, ` +
      `md and the filesystems ${Date.now() - cryptDone} ms`,
  );
  // Three snapshots in turn: the PV partition is never in one with the LVs
  // over it, nor with its whole disk (a partition and its disk: EBUSY).
  note(await chain([lvm.lin, lvm.thin, crypt], s.dir, 1, [lvm.lin, crypt]));
  note(await chain([lvm.pv1, md], s.dir, 1, [md]));
  note(await chain([lvm.disk], s.dir, 1));
});

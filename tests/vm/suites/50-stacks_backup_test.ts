/**
 * Backups of the device stacks servers run, with the real module: LVM
 * (a PV on a partition, linear, striped and thin LVs), LUKS2 (dm-crypt with
 * a key file) on a partition, and md raid1 over two loop devices. Each
 * tracked device (an LV, the PV partition, the whole disk, the LUKS mapping,
 * the md array) gets a full and incremental backups while an ext4 on the
 * stack and raw writers keep writing; every backup restores byte-equal to
 * the snapshot image it was read from, and the restored ext4 checks clean.
 * The tools run without udev (LVM's and libdevmapper's udev-less settings).
 *
 * @module
 */

import assert from "node:assert/strict";
import { backupDevices, type DeviceBackupOutcome } from "../../../lib/backup/backup_devices.ts";
import { type Manifest, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { detachQuietly, randomBytes, sh, sha256File } from "./40-helpers.ts";

const CHUNK = 256 << 10;

// LVM without udev: it makes the device nodes itself, monitors nothing,
// and keeps no metadata backups; thin pools without the thin_check tools.
await Deno.mkdir("/etc/lvm", { recursive: true });
await Deno.writeTextFile(
  "/etc/lvm/lvm.conf",
  `devices { obtain_device_list_from_udev = 0 }
activation { udev_sync = 0 udev_rules = 0 verify_udev_operations = 1 monitoring = 0 }
global { thin_check_executable = "" thin_repair_executable = "" use_lvmpolld = 0 }
backup { backup = 0 archive = 0 }
`,
);
// libdevmapper (cryptsetup) without udev: it makes /dev/mapper nodes itself.
Deno.env.set("DM_DISABLE_UDEV", "1");
for (const m of ["dm-crypt", "dm-thin-pool", "raid1", "xts", "algif_skcipher"]) {
  await sh("modprobe", m).catch(() => {}); // built in on the debug kernel
}

/** A scratch directory and loop devices, all gone on dispose. */
async function scratch(): Promise<
  AsyncDisposable & { dir: string; loop(mib: number, partitions?: boolean): Promise<string> }
> {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-stacks-" });
  const loops: string[] = [];
  return {
    dir,
    async loop(mib: number, partitions = false): Promise<string> {
      const file = `${dir}/disk${loops.length}.img`;
      {
        using f = await Deno.open(file, { write: true, create: true });
        await f.truncate(mib << 20);
      }
      const dev = (await sh("losetup", "-f")).trim();
      await sh("losetup", ...(partitions ? ["-P"] : []), dev, file);
      loops.push(dev);
      return dev;
    },
    async [Symbol.asyncDispose](): Promise<void> {
      for (const dev of loops.reverse()) await sh("losetup", "-d", dev).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/** Wait until a device node exists. */
async function node(path: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    try {
      if ((await Deno.stat(path)).isBlockDevice) return path;
    } catch {
      // not yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${path} did not appear`);
}

/** Shell loops writing until stopped; `stop()` returns once none runs. */
function writers(...scripts: string[]): { stop(): Promise<void> } {
  const children = scripts.map((s) =>
    new Deno.Command("sh", {
      // On TERM the loop ends after the write in progress.
      args: ["-c", `trap 'exit 0' TERM; i=0; while :; do ${s}; i=$((i + 1)); done`],
      stdout: "null",
      stderr: "null",
    }).spawn()
  );
  return {
    async stop(): Promise<void> {
      for (const c of children) c.kill();
      for (const c of children) await c.status;
    },
  };
}

/** A file writer on a mounted ext4 (fsync'd writes of varying size). */
function fileWriter(mnt: string): string {
  return `dd if=/dev/urandom of=${mnt}/w$((i % 9)) bs=64k count=$((i % 5 + 1)) conv=fsync 2>/dev/null`;
}

/** A raw writer: 64 KiB at a varying offset of the first `mib` MiB of `dev`. */
function rawWriter(dev: string, mib: number): string {
  return `dd if=/dev/urandom of=${dev} bs=64k count=1 seek=$(((i * 37) % (${mib} * 16))) ` +
    `oflag=direct conv=notrunc 2>/dev/null`;
}

function ok(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

/**
 * A full and `incrementals` incremental backups of `dev` while the writers
 * run; each restores to the sha256 of the snapshot image it was read from.
 * With `fsck`, the restored images must hold a clean ext4 too.
 */
async function chain(
  dev: string,
  dir: string,
  incrementals: number,
  fsck = false,
): Promise<string> {
  const name = dev.replaceAll("/", "_");
  const repo = await Repository.init(`${dir}/repo${name}`, { chunkSize: CHUNK });
  const points: { manifest: Manifest; imageHash: string }[] = [];
  try {
    for (let k = 0; k <= incrementals; k++) {
      let imageHash = "";
      const run = await backupDevices([dev], repo, {
        diffStorage: "/dev/shm",
        limit: 512n << 20n,
        beforeDestroy: async ([t]) => {
          imageHash = await sha256File(t.imagePath);
        },
      });
      assert.ok(run.ok, `${dev} backup ${k}: ${run.devices[0].error}`);
      points.push({ manifest: ok(run.devices[0]), imageHash });
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await detachQuietly(dev);
  }
  assert.deepEqual(
    points.map((p) => p.manifest.mode),
    ["full", ...Array(incrementals).fill("incremental")],
    `${dev}: the chain`,
  );
  const read: number[] = [];
  for (const [k, p] of points.entries()) {
    const target = `${dir}/restored${name}-${k}.img`;
    await restore(repo, p.manifest.id, target);
    assert.equal(await sha256File(target), p.imageHash, `${dev} point ${k} (${p.manifest.mode})`);
    if (fsck) await sh("e2fsck", "-fn", target);
    await Deno.remove(target);
    read.push(p.manifest.stats.chunksRead);
  }
  assert.ok((await verify(repo, { deep: true })).ok);
  await Deno.remove(repo.path, { recursive: true }).catch(() => {});
  return `${dev}: chunks read ${read.join(", ")} of ${points[0].manifest.stats.chunksTotal}`;
}

Deno.test("LVM: a PV on a partition and linear, striped and thin LVs; the LV, the thin LV, the PV partition and the disk each back up full + incrementals under writers, restoring to their images", async () => {
  await using s = await scratch();
  const diskA = await s.loop(200, true);
  await sh("cbt_tool", "mkpart", diskA, "2048", String(200 * 2048 - 2048));
  const pv1 = await node(`${diskA}p1`);
  const pv2 = await s.loop(64);
  const mnt = `${s.dir}/mnt`;
  await Deno.mkdir(mnt);
  await sh("lvm", "pvcreate", "-qq", pv1, pv2);
  await sh("lvm", "vgcreate", "-qq", "vg50", pv1, pv2);
  let load: { stop(): Promise<void> } | undefined;
  try {
    await sh("lvm", "lvcreate", "-qq", "-L", "48M", "-n", "lin", "vg50", pv1);
    await sh("lvm", "lvcreate", "-qq", "-i", "2", "-I", "64k", "-L", "32M", "-n", "str", "vg50");
    await sh("lvm", "lvcreate", "-qq", "-L", "40M", "-T", "vg50/pool");
    await sh("lvm", "lvcreate", "-qq", "-V", "64M", "-T", "vg50/pool", "-n", "thin");
    await sh("lvm", "vgmknodes", "vg50");
    const lin = await node("/dev/vg50/lin");
    const thin = await node("/dev/vg50/thin");
    const str = await node("/dev/vg50/str");
    await sh("mkfs.ext4", "-q", lin);
    await sh("mount", lin, mnt);
    await Deno.writeFile(`${mnt}/base.bin`, randomBytes(4 << 20, 50));
    load = writers(fileWriter(mnt), rawWriter(str, 32), rawWriter(thin, 64));
    const report = [
      await chain(lin, s.dir, 2, true),
      await chain(thin, s.dir, 2),
      await chain(pv1, s.dir, 1),
      await chain(diskA, s.dir, 1),
    ];
    console.log(report.join("\n"));
  } finally {
    await load?.stop();
    await sh("umount", mnt).catch(() => {});
    await sh("lvm", "vgchange", "-qq", "-an", "vg50").catch(() => {});
    await sh("lvm", "vgremove", "-qq", "-ff", "vg50").catch(() => {});
  }
});

Deno.test("dm-crypt: LUKS2 with a key file on a partition; the mapping backs up full + incrementals under writers, restoring to its images; the partition below too", async () => {
  await using s = await scratch();
  const disk = await s.loop(96, true);
  await sh("cbt_tool", "mkpart", disk, "2048", String(96 * 2048 - 2048));
  const part = await node(`${disk}p1`);
  const key = `${s.dir}/key`;
  await Deno.writeFile(key, randomBytes(64, 51));
  const mnt = `${s.dir}/mnt`;
  await Deno.mkdir(mnt);
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
  let load: { stop(): Promise<void> } | undefined;
  try {
    const crypt = await node("/dev/mapper/crypt50");
    await sh("mkfs.ext4", "-q", crypt);
    await sh("mount", crypt, mnt);
    load = writers(fileWriter(mnt));
    const report = [await chain(crypt, s.dir, 2, true), await chain(part, s.dir, 1)];
    console.log(report.join("\n"));
  } finally {
    await load?.stop();
    await sh("umount", mnt).catch(() => {});
    await sh("cryptsetup", "close", "crypt50").catch(() => {});
  }
});

Deno.test("md: raid1 over two loop devices; the array backs up full + incrementals under writers, restoring to its images", async () => {
  await using s = await scratch();
  const a = await s.loop(64);
  const b = await s.loop(64);
  const mnt = `${s.dir}/mnt`;
  await Deno.mkdir(mnt);
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
  let load: { stop(): Promise<void> } | undefined;
  try {
    const md = await node("/dev/md50");
    await sh("mkfs.ext4", "-q", md);
    await sh("mount", md, mnt);
    load = writers(fileWriter(mnt));
    console.log(await chain(md, s.dir, 2, true));
  } finally {
    await load?.stop();
    await sh("umount", mnt).catch(() => {});
    await sh("mdadm", "--stop", "/dev/md50").catch(() => {});
  }
});

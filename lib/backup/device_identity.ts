/**
 * A stable identity for a block device, so its backups keep their chain when
 * the kernel names it differently (`/dev/sdb` today, `/dev/sdc` after a
 * reboot or a new disk). The id is what udev would name it in
 * `/dev/disk/by-id` (WWN first, then device-mapper and md UUIDs, NVMe EUI,
 * SCSI/ATA/virtio serials), read from sysfs when udev made no links (a
 * minimal or container system); a partition is its disk's id plus `-partN`;
 * a loop device is its backing file. The path is kept as the name, for
 * people. A regular file's name is its absolute path.
 *
 * @module
 */

import { join, resolve } from "node:path";
import { majorMinor } from "../block_device.ts";
import type { DeviceIdentity } from "./manifest.ts";

/** Where {@linkcode deviceIdentity} looks (tests point it at a fake tree). */
export interface IdentityOptions {
  /** sysfs. @default "/sys" */
  sysRoot?: string;
  /** The udev links directory. @default "/dev/disk/by-id" */
  byIdDir?: string;
}

/** Preference among `/dev/disk/by-id` names: earlier is more stable and more specific. */
const BY_ID_ORDER = [
  "wwn-",
  "dm-uuid-",
  "md-uuid-",
  "nvme-eui.",
  "nvme-",
  "scsi-",
  "ata-",
  "virtio-",
  "usb-",
  "mmc-",
];

function rank(name: string): number {
  const i = BY_ID_ORDER.findIndex((p) => name.startsWith(p));
  return i < 0 ? BY_ID_ORDER.length : i;
}

async function readTrimmed(path: string): Promise<string | null> {
  try {
    const s = (await Deno.readTextFile(path)).trim();
    return s.length > 0 ? s : null;
  } catch {
    return null;
  }
}

/** The best `/dev/disk/by-id` name of block device `rdev`, if udev made one. */
async function byIdName(rdev: number, dir: string): Promise<string | null> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) {
      try {
        const st = await Deno.stat(join(dir, e.name));
        if (st.isBlockDevice && st.rdev === rdev) names.push(e.name);
      } catch {
        // a dangling link
      }
    }
  } catch {
    return null; // no udev links on this system
  }
  names.sort((a, b) => rank(a) - rank(b) || a.localeCompare(b));
  return names[0] ?? null;
}

/** An id from sysfs for the block device at `sysDir` (`/sys/dev/block/M:m`), if it has one. */
async function sysfsId(sysDir: string): Promise<string | null> {
  const dm = await readTrimmed(join(sysDir, "dm/uuid"));
  if (dm) return `dm-uuid-${dm}`;
  const md = await readTrimmed(join(sysDir, "md/uuid"));
  if (md) return `md-uuid-${md}`;
  const wwid = (await readTrimmed(join(sysDir, "wwid"))) ??
    (await readTrimmed(join(sysDir, "device/wwid")));
  if (wwid) return `wwid-${wwid.replace(/\s+/g, "_")}`;
  const serial = (await readTrimmed(join(sysDir, "serial"))) ??
    (await readTrimmed(join(sysDir, "device/serial")));
  if (serial) return `serial-${serial.replace(/\s+/g, "_")}`;
  const backing = await readTrimmed(join(sysDir, "loop/backing_file"));
  if (backing) {
    const offset = (await readTrimmed(join(sysDir, "loop/offset"))) ?? "0";
    return `loop-file-${backing}${offset === "0" ? "" : `@${offset}`}`;
  }
  return null;
}

/**
 * The identity of `path`: for a block device its stable id (see the module
 * doc) with `path` as the name, or the name alone when nothing stable is
 * known; for anything else its absolute path as the name.
 *
 * @example
 * ```ts ignore
 * import { deviceIdentity } from "./mod.ts";
 * console.log(await deviceIdentity("/dev/sdb")); // { name: "/dev/sdb", id: "wwn-0x5000c500a1b2c3d4" }
 * ```
 */
export async function deviceIdentity(
  path: string,
  options: IdentityOptions = {},
): Promise<DeviceIdentity> {
  const st = await Deno.stat(path);
  if (!st.isBlockDevice || st.rdev === null) return { name: resolve(path) };
  const byId = await byIdName(st.rdev, options.byIdDir ?? "/dev/disk/by-id");
  if (byId) return { name: path, id: byId };
  const sys = join(options.sysRoot ?? "/sys", "dev/block", majorMinor(st.rdev));
  const own = await sysfsId(sys);
  if (own) return { name: path, id: own };
  // A partition: its disk's id and its number.
  const part = await readTrimmed(join(sys, "partition"));
  if (part) {
    const disk = await sysfsId(join(sys, ".."));
    if (disk) return { name: path, id: `${disk}-part${part}` };
  }
  return { name: path };
}

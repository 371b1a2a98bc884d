/**
 * Facts about Linux block devices that several commands need: `dev_t`
 * decoding, the device's `/dev` name from sysfs, and whether it is in use
 * (mounted, a partition mounted, or held by device-mapper or md). Reads
 * sysfs and the mount table, which Deno allows only with `--allow-all`;
 * falls back to `lsblk` and `findmnt` (`--allow-run`).
 *
 * @module
 */

/** Major and minor numbers of a Linux `dev_t` (as `Deno.stat().rdev` and `.dev` report it). */
export function devNumbers(rdev: number): { major: number; minor: number } {
  const lo = rdev % 2 ** 32;
  const hi = Math.floor(rdev / 2 ** 32);
  return {
    major: ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0),
    minor: (lo & 0xff) | ((lo >>> 12) & 0xfff00),
  };
}

/**
 * `major:minor` of a `dev_t`.
 *
 * @example
 * ```ts
 * import { majorMinor } from "./block_device.ts";
 * console.log(majorMinor(0x800 + 16)); // 8:16
 * ```
 */
export function majorMinor(rdev: number): string {
  const { major, minor } = devNumbers(rdev);
  return `${major}:${minor}`;
}

/**
 * The `major:minor` numbers that `/proc/self/mountinfo`-formatted text shows
 * as mounted (third field of each line).
 */
export function mountedDevices(mountinfo: string): Set<string> {
  const out = new Set<string>();
  for (const line of mountinfo.split("\n")) {
    const f = line.split(" ");
    if (f.length > 2 && /^\d+:\d+$/.test(f[2])) out.add(f[2]);
  }
  return out;
}

/** The `/dev` path of block device `major:minor`, from sysfs. */
export async function devicePath(majorMinor: string): Promise<string> {
  const uevent = await Deno.readTextFile(`/sys/dev/block/${majorMinor}/uevent`);
  const m = /^DEVNAME=(.+)$/m.exec(uevent);
  if (!m) throw new Error(`No DEVNAME for block device ${majorMinor} in sysfs`);
  return `/dev/${m[1]}`;
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

async function run(cmd: string, args: string[]): Promise<string | null> {
  try {
    const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout) : null;
  } catch {
    return null;
  }
}

/** What uses a block device, as {@linkcode blockDeviceUse} finds it. */
export interface BlockDeviceUse {
  /** `major:minor` of the device. */
  device: string;
  /** The device or its partitions that are mounted (`major:minor`). */
  mounted: string[];
  /** Devices built on it (device-mapper, md), by sysfs name or `TYPE MAJ:MIN`. */
  holders: string[];
  /** Why it could not be checked (no sysfs/mount table access, no lsblk/findmnt), or null. */
  unknown: string | null;
}

/**
 * Whether block device `path` (with `dev_t` `rdev`) is mounted, has a
 * mounted partition, or is held by another device.
 *
 * @example
 * ```ts ignore
 * import { blockDeviceUse } from "./block_device.ts";
 * const st = await Deno.stat("/dev/vdb");
 * const use = await blockDeviceUse("/dev/vdb", st.rdev!);
 * console.log(use.mounted, use.holders);
 * ```
 */
export async function blockDeviceUse(
  path: string,
  rdev: number,
  mountInfoPath = "/proc/self/mountinfo",
): Promise<BlockDeviceUse> {
  const self = majorMinor(rdev);
  const use: BlockDeviceUse = { device: self, mounted: [], holders: [], unknown: null };
  const devs = new Set([self]);
  const sys = `/sys/dev/block/${self}`;
  let sysOk = false;
  try {
    for await (const e of Deno.readDir(sys)) {
      sysOk = true;
      const dev = await readText(`${sys}/${e.name}/dev`);
      if (dev !== null && (await readText(`${sys}/${e.name}/partition`)) !== null) {
        devs.add(dev.trim());
      }
    }
    for await (const h of Deno.readDir(`${sys}/holders`)) use.holders.push(h.name);
  } catch {
    // no sysfs access: lsblk below
  }
  if (!sysOk) {
    const tree = await run("lsblk", ["-rno", "MAJ:MIN,TYPE", path]);
    if (tree === null) use.unknown = "no access to sysfs or lsblk";
    else {
      for (const line of tree.split("\n").slice(1)) {
        const [dev, type] = line.trim().split(/\s+/);
        if (!dev) continue;
        if (type === "part") devs.add(dev);
        else use.holders.push(`${type} ${dev}`);
      }
    }
  }
  const info = (await readText(mountInfoPath)) ??
    (await run("findmnt", ["-rn", "-o", "ID,PARENT,MAJ:MIN"]));
  if (info === null) {
    use.unknown = "no access to /proc/self/mountinfo or findmnt";
    return use;
  }
  const mounted = mountedDevices(info);
  for (const d of devs) if (mounted.has(d)) use.mounted.push(d);
  return use;
}

/**
 * Which file system a block device holds (from its superblock magic), and
 * the options that mount it read-only without writing to it: a backup point
 * is a crash-consistent image, so its journal is never replayed (ext4
 * `noload`, XFS `norecovery`), and an XFS image may be mounted next to its
 * still-mounted original (`nouuid`).
 *
 * @module
 */

/** File systems recognised by {@linkcode probeFilesystem}. */
export type FsType = "ext4" | "xfs" | "btrfs";

/** Bytes {@linkcode probeFilesystem} needs from the start of the device. */
export const PROBE_BYTES = 65536 + 4096;

/**
 * The file system whose superblock starts `head` (the first
 * {@linkcode PROBE_BYTES} bytes of a device), or `null`.
 *
 * @example
 * ```ts
 * import { probeFilesystem } from "./fs_probe.ts";
 * const head = new Uint8Array(4096);
 * head.set([0x53, 0xef], 1080); // ext2/3/4 magic, little-endian 0xEF53
 * console.log(probeFilesystem(head)); // "ext4"
 * ```
 */
export function probeFilesystem(head: Uint8Array): FsType | null {
  const ascii = (at: number, s: string): boolean =>
    head.length >= at + s.length && [...s].every((c, i) => head[at + i] === c.charCodeAt(0));
  if (head.length >= 1082 && head[1080] === 0x53 && head[1081] === 0xef) return "ext4";
  if (ascii(0, "XFSB")) return "xfs";
  if (ascii(65536 + 64, "_BHRfS_M")) return "btrfs";
  return null;
}

/**
 * `mount -o` options that mount `fs` read-only and leave the device as it is.
 *
 * @example
 * ```ts
 * import { readOnlyMountOptions } from "./fs_probe.ts";
 * console.log(readOnlyMountOptions("xfs").join(",")); // ro,norecovery,nouuid
 * ```
 */
export function readOnlyMountOptions(fs: FsType | null): string[] {
  switch (fs) {
    case "ext4":
      return ["ro", "noload"];
    case "xfs":
      return ["ro", "norecovery", "nouuid"];
    case "btrfs":
      return ["ro", "rescue=nologreplay"];
    default:
      return ["ro"];
  }
}

/** Read the first {@linkcode PROBE_BYTES} bytes of `device` (fewer if it is smaller). */
export async function readHead(device: string): Promise<Uint8Array> {
  const f = await Deno.open(device, { read: true });
  try {
    const buf = new Uint8Array(PROBE_BYTES);
    let got = 0;
    while (got < buf.length) {
      const n = await f.read(buf.subarray(got));
      if (n === null) break;
      got += n;
    }
    return buf.subarray(0, got);
  } finally {
    f.close();
  }
}

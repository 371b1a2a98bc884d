/**
 * Where a file's data lies on its block device: `FS_IOC_FIEMAP` through
 * libc (the upstream tool's `markdirtyblock --file`), so the blocks of one
 * file can be marked changed for the next incremental backup. Linux only;
 * needs `--allow-ffi`, and `--allow-all` for sysfs. libc is opened on first use.
 *
 * @example Mark a file's blocks dirty on the tracked device holding it
 * ```ts ignore
 * import { fileSectors, Tracker } from "@blksnap/blksnap";
 * const f = await fileSectors("/srv/db/table.ibd");
 * using tracker = Tracker.open(f.device);
 * tracker.markDirty(f.ranges);
 * ```
 *
 * @module
 */

import { devicePath, majorMinor } from "./block_device.ts";

/** A file's extents on its device, in 512-byte sectors of the device. */
export interface FileSectors {
  /** The block device holding the file, e.g. `/dev/vdb1`. */
  device: string;
  /** `major:minor` of that device. */
  deviceNumber: string;
  /** The file's data extents on the device (sectors relative to the device). */
  ranges: { sector: bigint; count: bigint }[];
  /** Bytes of the file covered by the ranges. */
  bytes: bigint;
}

const FS_IOC_FIEMAP = 0xC020660Bn;
const FIEMAP_FLAG_SYNC = 1;
const FIEMAP_EXTENT_LAST = 0x1;
const FIEMAP_EXTENT_UNKNOWN = 0x2;
const FIEMAP_EXTENT_ENCODED = 0x8;
const FIEMAP_EXTENT_DATA_INLINE = 0x200;
const HEADER = 32;
const EXTENT = 56;
const BATCH = 256;

const libcSymbols = {
  open: { parameters: ["buffer", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let libc: Deno.DynamicLibrary<typeof libcSymbols> | null = null;

function openLibc(): Deno.DynamicLibrary<typeof libcSymbols> {
  libc ??= Deno.dlopen("libc.so.6", libcSymbols);
  return libc;
}

function errno(lib: Deno.DynamicLibrary<typeof libcSymbols>): number {
  const p = lib.symbols.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/**
 * The sectors `path`'s data occupies on its block device (flushed first).
 * Refuses files whose data is not at a known place (inline, encoded,
 * delayed allocation), and anything but a regular file, with a `RangeError`.
 */
export async function fileSectors(path: string): Promise<FileSectors> {
  const st = await Deno.stat(path);
  if (!st.isFile) throw new RangeError(`${path} is not a regular file`);
  if (st.dev === null) throw new RangeError(`${path}: no device number`);
  const deviceNumber = majorMinor(st.dev);
  const device = await devicePath(deviceNumber);
  const lib = openLibc();
  const fd = lib.symbols.open(new TextEncoder().encode(path + "\0"), 0 /* O_RDONLY */);
  if (fd < 0) throw new Error(`open ${path} failed (errno ${errno(lib)})`);
  const ranges: { sector: bigint; count: bigint }[] = [];
  let bytes = 0n;
  try {
    const buf = new Uint8Array(HEADER + BATCH * EXTENT);
    const view = new DataView(buf.buffer);
    let start = 0n;
    for (;;) {
      buf.fill(0);
      view.setBigUint64(0, start, true); // fm_start
      view.setBigUint64(8, 0xffff_ffff_ffff_ffffn, true); // fm_length
      view.setUint32(16, FIEMAP_FLAG_SYNC, true); // fm_flags
      view.setUint32(24, BATCH, true); // fm_extent_count
      if (lib.symbols.ioctl(fd, FS_IOC_FIEMAP, buf) < 0) {
        throw new Error(`FIEMAP of ${path} failed (errno ${errno(lib)})`);
      }
      const mapped = view.getUint32(20, true);
      if (mapped === 0) break;
      let last = false;
      for (let i = 0; i < mapped; i++) {
        const at = HEADER + i * EXTENT;
        const logical = view.getBigUint64(at, true);
        const physical = view.getBigUint64(at + 8, true);
        const length = view.getBigUint64(at + 16, true);
        const flags = view.getUint32(at + 40, true);
        if (flags & (FIEMAP_EXTENT_UNKNOWN | FIEMAP_EXTENT_ENCODED | FIEMAP_EXTENT_DATA_INLINE)) {
          throw new RangeError(`${path}: an extent has no plain location on ${device}`);
        }
        const first = physical / 512n;
        const end = (physical + length + 511n) / 512n;
        ranges.push({ sector: first, count: end - first });
        bytes += length;
        start = logical + length;
        if (flags & FIEMAP_EXTENT_LAST) last = true;
      }
      if (last || mapped < BATCH) break;
    }
  } finally {
    lib.symbols.close(fd);
  }
  return { device, deviceNumber, ranges, bytes };
}

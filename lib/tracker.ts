/**
 * The change tracker of one block device.
 *
 * @module
 */

import { type CbtInfo, CbtMap } from "./cbt_map.ts";
import { BlksnapError } from "./errors.ts";
import { formatUuid, fromCString, outPointer, readOutPointer, toCString } from "./ffi/codec.ts";
import { Errno, errnoName } from "./ffi/errno.ts";
import { NativeHandle } from "./ffi/handle.ts";
import { CBTDIRTY_MAX_RANGES, layout } from "./ffi/layout.ts";
import { native } from "./ffi/library.ts";
import { unwrap } from "./ffi/unwrap.ts";

/**
 * A range of 512-byte sectors, for {@linkcode Tracker.markDirty}.
 *
 * @example
 * ```ts
 * import type { SectorRange } from "@blksnap/blksnap";
 * const firstMiB: SectorRange = { sector: 0n, count: 2048n };
 * console.assert(firstMiB.count * 512n === 1n << 20n);
 * ```
 */
export interface SectorRange {
  /** The first sector. */
  sector: bigint;
  /** The number of sectors. */
  count: bigint;
}

/**
 * A device's snapshot state, from {@linkcode Tracker.snapshotInfo}.
 *
 * @example
 * ```ts
 * import type { DeviceSnapshotInfo } from "@blksnap/blksnap";
 * const healthy: DeviceSnapshotInfo = { errorCode: 0, error: null, image: "blksnap-1-0" };
 * console.assert(healthy.error === null);
 * ```
 */
export interface DeviceSnapshotInfo {
  /** 0, or the negative errno that corrupted the snapshot (-28: out of space). */
  errorCode: number;
  /** The symbolic name of `-errorCode` (`"ENOSPC"`), or `null` when healthy. */
  error: string | null;
  /** The image's disk name (`"blksnap-7-0"`), or `null` until taken. */
  image: string | null;
}

/**
 * How libblksnap reaches the tracker: `"blkfilter"` (the kernel's
 * `BLKFILTER_*` requests on the device) or `"control"` (the module's control
 * device, naming the device by number, on kernels without blkfilter).
 *
 * @example
 * ```ts
 * import type { Transport } from "@blksnap/blksnap";
 * const t: Transport = "control";
 * console.assert(t === "control");
 * ```
 */
export type Transport = "blkfilter" | "control";

const SECTOR_LIMIT = 1n << 64n;

function checkDevice(device: unknown): string {
  if (typeof device !== "string") {
    throw new TypeError(`device must be a string, got ${typeof device}`);
  }
  if (device.length === 0) throw new TypeError("device must not be empty");
  return device;
}

function encodeRanges(ranges: readonly SectorRange[]): BigUint64Array<ArrayBuffer> {
  if (!Array.isArray(ranges)) throw new TypeError("ranges must be an array");
  if (ranges.length > 0xffff_ffff) throw new RangeError("too many ranges");
  const stride = layout.blksnap_sectors.size / 8;
  const out = new BigUint64Array(Math.max(ranges.length, 1) * stride);
  ranges.forEach((range, i) => {
    if (typeof range !== "object" || range === null) {
      throw new TypeError(`ranges[${i}] must be an object`);
    }
    const { sector, count } = range;
    if (typeof sector !== "bigint" || typeof count !== "bigint") {
      throw new TypeError(`ranges[${i}].sector and .count must be bigints`);
    }
    if (sector < 0n || count < 0n || sector >= SECTOR_LIMIT || sector + count > SECTOR_LIMIT) {
      throw new RangeError(`ranges[${i}] is out of range: sector ${sector}, count ${count}`);
    }
    out[i * stride + layout.blksnap_sectors.offset / 8] = sector;
    out[i * stride + layout.blksnap_sectors.count / 8] = count;
  });
  return out;
}

function decodeInfo(buf: Uint8Array<ArrayBuffer>): CbtInfo {
  const view = new DataView(buf.buffer);
  const l = layout.blksnap_cbtinfo;
  return {
    deviceCapacity: view.getBigUint64(l.device_capacity, true),
    blockSize: view.getUint32(l.block_size, true),
    blockCount: view.getUint32(l.block_count, true),
    generationId: formatUuid(buf.subarray(l.generation_id, l.generation_id + 16)),
    changesNumber: view.getUint8(l.changes_number),
  };
}

function sameGeneration(a: CbtInfo, b: CbtInfo): boolean {
  return a.generationId === b.generationId && a.changesNumber === b.changesNumber &&
    a.blockCount === b.blockCount && a.blockSize === b.blockSize &&
    a.deviceCapacity === b.deviceCapacity;
}

/** How often a map read is retried when a snapshot is taken during it. */
const MAP_READ_ATTEMPTS = 3;

/**
 * A block device's change tracker: attach and detach it, read its CBT
 * parameters and map, mark ranges dirty, and see its snapshot state.
 *
 * A `Tracker` is a handle on the device (open read-only, never exclusively);
 * the tracker in the kernel outlives it. `close()` (or `using`) releases the
 * handle and is idempotent; a handle dropped without `close()` is released
 * when it is garbage-collected. Any call on a closed handle throws a
 * {@linkcode BlksnapError} with code `EBADF`.
 *
 * @example Attach and read what changed
 * ```ts ignore
 * import { Tracker } from "@blksnap/blksnap";
 * using tracker = Tracker.open("/dev/sdb1");
 * tracker.attach();
 * const map = tracker.readCbtMap();
 * console.log(map.info.generationId, map.changedBytes(0));
 * ```
 */
export class Tracker implements Disposable {
  #handle: NativeHandle;
  #device: string;
  #major: number;
  #minor: number;
  #transport: Transport;

  private constructor(device: string, pointer: Deno.PointerObject) {
    const lib = native();
    this.#device = device;
    this.#handle = new NativeHandle(pointer, (p) => lib.blksnap_dev_close(p), this, "tracker");
    const major = new Uint32Array(1);
    const minor = new Uint32Array(1);
    let transport: number;
    try {
      unwrap(lib.blksnap_dev_number(pointer, major, minor), "Tracker.open", device);
      transport = unwrap(lib.blksnap_dev_transport(pointer), "Tracker.open", device);
    } catch (err) {
      this.#handle.close();
      throw err;
    }
    this.#major = major[0];
    this.#minor = minor[0];
    this.#transport = transport === 1 ? "blkfilter" : "control";
  }

  /**
   * Opens the block device at `device` (a whole disk or a partition). Does
   * not attach the tracker. Throws `TypeError` for a non-string or empty
   * path, and a {@linkcode BlksnapError}: `ENOTBLK` (not a block device),
   * `ENOENT`, `EACCES`.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(tracker.major, tracker.minor);
   * ```
   */
  static open(device: string): Tracker {
    const path = toCString(checkDevice(device), "device");
    const lib = native();
    const out = outPointer();
    unwrap(lib.blksnap_dev_open(path, out), "Tracker.open", device);
    const pointer = readOutPointer(out);
    if (pointer === null) throw new BlksnapError(Errno.ENOMEM, "Tracker.open");
    return new Tracker(device, pointer);
  }

  /**
   * The device path given to {@linkcode Tracker.open}.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.assert(tracker.device === "/dev/vdb");
   * ```
   */
  get device(): string {
    return this.#device;
  }

  /**
   * The device's major number.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(`${tracker.major}:${tracker.minor}`);
   * ```
   */
  get major(): number {
    return this.#major;
  }

  /**
   * The device's minor number.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(tracker.minor);
   * ```
   */
  get minor(): number {
    return this.#minor;
  }

  /**
   * Which request path libblksnap chose for this device.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(tracker.transport); // "control" on a stock kernel
   * ```
   */
  get transport(): Transport {
    return this.#transport;
  }

  /**
   * True once closed.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * const tracker = Tracker.open("/dev/vdb");
   * tracker.close();
   * console.assert(tracker.closed);
   * ```
   */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * **UNSAFE**: the raw `struct blksnap_dev *`, or `null` once closed. Valid
   * only while this object is open; never free it.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(tracker.unsafeHandle !== null);
   * ```
   */
  get unsafeHandle(): Deno.PointerObject | null {
    return this.#handle.pointer;
  }

  /**
   * Attaches the tracker: change tracking starts with a new generation.
   * Returns `true` if it attached now, `false` if it was already attached.
   * Throws a {@linkcode BlksnapError}: `ENOENT` (module not loaded), `EBUSY`
   * (another filter), `EPERM`.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * console.log(tracker.attach() ? "attached" : "was attached");
   * ```
   */
  attach(): boolean {
    const rc = native().blksnap_dev_attach(this.#handle.use("Tracker.attach"));
    if (rc === -Errno.EALREADY) return false;
    unwrap(rc, "Tracker.attach", this.#device);
    return true;
  }

  /**
   * Detaches the tracker; its CBT map is lost. A snapshot holding the
   * device forgets it (once taken, its image of the device is marked
   * corrupted). Throws a {@linkcode BlksnapError}: `ENOENT` (not attached),
   * `EPERM`.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * tracker.detach();
   * ```
   */
  detach(): void {
    unwrap(
      native().blksnap_dev_detach(this.#handle.use("Tracker.detach")),
      "Tracker.detach",
      this.#device,
    );
  }

  /**
   * The tracker's CBT parameters. Throws a {@linkcode BlksnapError}:
   * `ENOENT` (not attached), `ESRCH` (no map).
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * const info = tracker.cbtInfo();
   * console.log(info.generationId, info.changesNumber, info.blockSize);
   * ```
   */
  cbtInfo(): CbtInfo {
    const buf = new Uint8Array(layout.blksnap_cbtinfo.size);
    unwrap(
      native().blksnap_dev_cbtinfo(this.#handle.use("Tracker.cbtInfo"), buf),
      "Tracker.cbtInfo",
      this.#device,
    );
    return decodeInfo(buf);
  }

  /**
   * Reads the whole CBT map (the read map, frozen at the last take) with its
   * info. The info is read before and after the map; if a snapshot was
   * taken in between (the info differs, or the kernel refused a map request
   * that the take overtook with `EAGAIN`), the read is repeated, up to 3
   * times. The map returned is always one take's. Throws a
   * {@linkcode BlksnapError}: `EAGAIN` (takes kept overtaking the read: call
   * again), `ENOENT` (not attached), `EFAULT` (the map is corrupted).
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * const map = tracker.readCbtMap();
   * console.log(map.changedExtents(0).length);
   * ```
   */
  readCbtMap(): CbtMap {
    const op = "Tracker.readCbtMap";
    for (let attempt = 0; attempt < MAP_READ_ATTEMPTS; attempt++) {
      const before = this.cbtInfo();
      const bytes = new Uint8Array(before.blockCount);
      if (before.blockCount > 0) {
        const lib = native();
        const rc = lib.blksnap_dev_cbtmap(this.#handle.use(op), 0, before.blockCount, bytes);
        // The kernel refuses a request a take overtook: read again.
        if (rc === -Errno.EAGAIN) continue;
        unwrap(rc, op, this.#device);
      }
      const after = this.cbtInfo();
      if (sameGeneration(before, after)) return new CbtMap(before, bytes);
    }
    throw new BlksnapError(Errno.EAGAIN, op, {
      detail: `${this.#device}: the map kept changing while it was read`,
    });
  }

  /**
   * {@linkcode Tracker.readCbtMap} as a nonblocking call: the map is copied
   * on a worker thread. Do not close the tracker while it is pending (if
   * you do, the handle is released after the read).
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * const map = await tracker.readCbtMapAsync();
   * console.log(map.changedBytes(0));
   * ```
   */
  async readCbtMapAsync(): Promise<CbtMap> {
    const op = "Tracker.readCbtMapAsync";
    for (let attempt = 0; attempt < MAP_READ_ATTEMPTS; attempt++) {
      const before = this.cbtInfo();
      const bytes = new Uint8Array(before.blockCount);
      if (before.blockCount > 0) {
        const lib = native();
        const rc = await this.#handle.useAsync(
          op,
          (p) => lib.blksnap_dev_cbtmap_async(p, 0, before.blockCount, bytes),
        );
        if (rc === -Errno.EAGAIN) continue;
        unwrap(rc, op, this.#device);
      }
      const after = this.cbtInfo();
      if (sameGeneration(before, after)) return new CbtMap(before, bytes);
    }
    throw new BlksnapError(Errno.EAGAIN, op, {
      detail: `${this.#device}: the map kept changing while it was read`,
    });
  }

  /**
   * Marks sector ranges as changed in both CBT maps, so the next backup
   * copies them (e.g. after writing to the device behind the tracker's
   * back). Each range is `{ sector, count }` in 512-byte sectors, as
   * `bigint`s. Throws `TypeError`/`RangeError` for bad ranges before any
   * native call, and a {@linkcode BlksnapError}: `EINVAL` (past the
   * device), `ENOENT` (not attached).
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * tracker.markDirty([{ sector: 0n, count: 8n }, { sector: 4096n, count: 2048n }]);
   * ```
   */
  markDirty(ranges: readonly SectorRange[]): void {
    const op = "Tracker.markDirty";
    const encoded = encodeRanges(ranges);
    const pointer = this.#handle.use(op);
    if (ranges.length === 0) return;
    const lib = native();
    const stride = layout.blksnap_sectors.size / 8;
    for (let at = 0; at < ranges.length; at += CBTDIRTY_MAX_RANGES) {
      const n = Math.min(CBTDIRTY_MAX_RANGES, ranges.length - at);
      const part = encoded.subarray(at * stride, (at + n) * stride);
      unwrap(lib.blksnap_dev_cbtdirty(pointer, part, n), op, this.#device);
    }
  }

  /**
   * The device's snapshot state: the error that corrupted its snapshot, if
   * any, and its image's name once taken; a device in no snapshot reads as
   * no error and no image (the module answers 0, not an errno). Throws a
   * {@linkcode BlksnapError}: `ENOENT` (not attached), `EOPNOTSUPP` (the
   * module has no snapshots yet).
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * using tracker = Tracker.open("/dev/vdb");
   * const { image, error } = tracker.snapshotInfo();
   * console.log(image, error);
   * ```
   */
  snapshotInfo(): DeviceSnapshotInfo {
    const op = "Tracker.snapshotInfo";
    const buf = new Uint8Array(layout.blksnap_snapshotinfo.size);
    unwrap(native().blksnap_dev_snapshot_info(this.#handle.use(op), buf), op, this.#device);
    const l = layout.blksnap_snapshotinfo;
    const errorCode = new DataView(buf.buffer).getInt32(l.error_code, true);
    const image = fromCString(buf.subarray(l.image));
    return {
      errorCode,
      error: errorCode === 0 ? null : errnoName(-errorCode),
      image: image === "" ? null : image,
    };
  }

  /**
   * Releases the handle; the kernel's tracker keeps tracking. Idempotent.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * const tracker = Tracker.open("/dev/vdb");
   * tracker.close();
   * tracker.close(); // no-op
   * ```
   */
  close(): void {
    this.#handle.close();
  }

  /**
   * Same as {@linkcode Tracker.close}, for `using`.
   *
   * @example
   * ```ts ignore
   * import { Tracker } from "@blksnap/blksnap";
   * {
   *   using tracker = Tracker.open("/dev/vdb");
   *   tracker.attach();
   * } // closed here
   * ```
   */
  [Symbol.dispose](): void {
    this.close();
  }

  /** Prints the device, its number and state, not a pointer. */
  [Symbol.for("Deno.customInspect")](): string {
    const state = this.closed ? "closed" : this.#transport;
    return `Tracker { device: "${this.#device}", dev: ${this.#major}:${this.#minor}, ${state} }`;
  }
}

/**
 * Copy-on-write snapshots of one or several block devices.
 *
 * @module
 */

import { BlksnapError } from "./errors.ts";
import { formatUuid, outPointer, parseUuid, readOutPointer, toCString } from "./ffi/codec.ts";
import { Errno, errnoName } from "./ffi/errno.ts";
import { NativeHandle } from "./ffi/handle.ts";
import { EventCode, layout } from "./ffi/layout.ts";
import { native } from "./ffi/library.ts";
import { unwrap } from "./ffi/unwrap.ts";
import { type DeviceSnapshotInfo, Tracker } from "./tracker.ts";

/**
 * Options of {@linkcode Snapshot.create}.
 *
 * @example
 * ```ts
 * import type { SnapshotCreateOptions } from "@blksnap/blksnap";
 * const options: SnapshotCreateOptions = {
 *   diffStorage: "/var/tmp",
 *   limit: 4n << 30n,
 *   devices: ["/dev/vdb"],
 * };
 * console.assert(options.devices?.length === 1);
 * ```
 */
export interface SnapshotCreateOptions {
  /**
   * The difference storage: a regular file, a directory (the module makes
   * an unnamed temporary file in it, freed on destroy), or a block device.
   */
  diffStorage: string;
  /**
   * The most the difference storage may grow to, in bytes (rounded up to
   * 512-byte sectors); at least 1.
   */
  limit: bigint | number;
  /**
   * Devices to add right away (paths or open trackers); their trackers must
   * be attached.
   * @default {[]}
   */
  devices?: readonly (string | Tracker)[];
}

/**
 * An event of a snapshot, from {@linkcode Snapshot.waitEvent}.
 *
 * - `"corrupted"`: the snapshot of `device` failed with `errorCode`
 *   (negative errno; `error` is its name); its image now reads with EIO.
 * - `"noSpace"`: the difference storage could not grow by
 *   `requestedSectors` because of the limit.
 * - `"unknown"`: a code this binding does not know; `data` is the payload.
 *
 * @example
 * ```ts
 * import type { SnapshotEvent } from "@blksnap/blksnap";
 * function describe(event: SnapshotEvent): string {
 *   switch (event.type) {
 *     case "corrupted": return `${event.device.major}:${event.device.minor} ${event.error}`;
 *     case "noSpace": return `needs ${event.requestedSectors} more sectors`;
 *     default: return `event ${event.code}`;
 *   }
 * }
 * console.log(describe({ type: "noSpace", code: 1, time: 0n, requestedSectors: 8n }));
 * ```
 */
export type SnapshotEvent =
  | {
    type: "corrupted";
    code: 0;
    /** When it happened: kernel monotonic time (ktime), nanoseconds. */
    time: bigint;
    device: { major: number; minor: number };
    errorCode: number;
    error: string;
  }
  | {
    type: "noSpace";
    code: 1;
    /** When it happened: kernel monotonic time (ktime), nanoseconds. */
    time: bigint;
    requestedSectors: bigint;
  }
  | {
    type: "unknown";
    code: number;
    /** When it happened: kernel monotonic time (ktime), nanoseconds. */
    time: bigint;
    data: Uint8Array;
  };

const U32_MAX = 0xffff_ffff;
const { ENOENT, EINTR, ESRCH, ENODEV, ENODATA } = Errno;

function openControl(op: string): Deno.PointerObject {
  const lib = native();
  const out = outPointer();
  unwrap(lib.blksnap_ctl_open(null, out), op, "/dev/blksnap-control");
  const pointer = readOutPointer(out);
  if (pointer === null) throw new BlksnapError(Errno.ENOMEM, op);
  return pointer;
}

function limitSectors(limit: unknown): bigint {
  let bytes: bigint;
  if (typeof limit === "bigint") {
    bytes = limit;
  } else if (typeof limit === "number") {
    if (!Number.isSafeInteger(limit)) {
      throw new RangeError(`limit must be a safe integer number of bytes, got ${limit}`);
    }
    bytes = BigInt(limit);
  } else {
    throw new TypeError(`limit must be a bigint or a number, got ${typeof limit}`);
  }
  if (bytes < 1n || bytes > (1n << 64n) - 512n) {
    throw new RangeError(`limit must be 1..2^64-512 bytes, got ${bytes}`);
  }
  return (bytes + 511n) / 512n;
}

function checkDeviceArg(device: unknown, what: string): string | Tracker {
  if (device instanceof Tracker) return device;
  if (typeof device !== "string") {
    throw new TypeError(`${what} must be a device path or a Tracker, got ${typeof device}`);
  }
  if (device.length === 0) throw new TypeError(`${what} must not be empty`);
  return device;
}

function withTracker<T>(device: string | Tracker, call: (tracker: Tracker) => T): T {
  if (device instanceof Tracker) return call(device);
  const tracker = Tracker.open(device);
  try {
    return call(tracker);
  } finally {
    tracker.close();
  }
}

function decodeEvent(buf: Uint8Array<ArrayBuffer>): SnapshotEvent {
  const l = layout.blksnap_snapshot_event;
  const view = new DataView(buf.buffer);
  const code = view.getUint32(l.code, true);
  const time = view.getBigInt64(l.time_label, true);
  if (code === EventCode.corrupted) {
    const c = layout.blksnap_event_corrupted;
    const errorCode = view.getInt32(l.data + c.err_code, true);
    return {
      type: "corrupted",
      code: 0,
      time,
      device: {
        major: view.getUint32(l.data + c.dev_id_mj, true),
        minor: view.getUint32(l.data + c.dev_id_mn, true),
      },
      errorCode,
      error: errnoName(-errorCode),
    };
  }
  if (code === EventCode.noSpace) {
    return {
      type: "noSpace",
      code: 1,
      time,
      requestedSectors: view.getBigUint64(
        l.data + layout.blksnap_event_no_space.requested_nr_sect,
        true,
      ),
    };
  }
  return { type: "unknown", code, time, data: buf.slice(l.data) };
}

/**
 * A snapshot: a set of block devices whose state is frozen at one instant
 * (`take()`), each readable through an image device while the originals
 * keep running; changed blocks are copied to the difference storage first.
 * Writes to an image (a journal replay, `fsck`) go to that storage, never to
 * the original.
 *
 * A `Snapshot` object holds a handle on the control device and the
 * snapshot's id; the snapshot itself lives in the kernel until destroyed.
 *
 * **Disposal.** `close()` releases the handle and leaves the snapshot alone.
 * `destroy()` destroys the snapshot (and closes). `[Symbol.dispose]()` (for
 * `using`) destroys the snapshot only if this object *owns* it, i.e. made
 * it with {@linkcode Snapshot.create}; a snapshot reached with
 * {@linkcode Snapshot.open} is only closed. A snapshot already gone is not
 * an error on dispose. Objects dropped without either are closed when
 * garbage-collected, never destroyed.
 *
 * @example Snapshot one device and read its image
 * ```ts ignore
 * import { Snapshot, Tracker } from "@blksnap/blksnap";
 * using tracker = Tracker.open("/dev/vdb");
 * tracker.attach();
 * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n, devices: [tracker] });
 * snapshot.take();
 * console.log(snapshot.imagePath(tracker)); // /dev/blksnap-254-16
 * ```
 */
export class Snapshot implements Disposable {
  #handle: NativeHandle;
  #id: Uint8Array<ArrayBuffer>;
  #idText: string;
  #owned: boolean;

  private constructor(pointer: Deno.PointerObject, id: Uint8Array<ArrayBuffer>, owned: boolean) {
    const lib = native();
    this.#handle = new NativeHandle(pointer, (p) => lib.blksnap_ctl_close(p), this, "snapshot");
    this.#id = id;
    this.#idText = formatUuid(id);
    this.#owned = owned;
  }

  /**
   * Creates a snapshot (not yet taken) with its difference storage, and
   * adds `devices`. If adding fails, the new snapshot is destroyed and the
   * error thrown. Throws `TypeError`/`RangeError` for bad options, and a
   * {@linkcode BlksnapError}: `ENOENT` (module not loaded, or no storage
   * path), `EINVAL` (storage of another type), `ENOSPC`, `EPERM`,
   * `EOPNOTSUPP`.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(snapshot.id);
   * ```
   */
  static create(options: SnapshotCreateOptions): Snapshot {
    const op = "Snapshot.create";
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    const path = toCString(options.diffStorage, "options.diffStorage");
    const sectors = limitSectors(options.limit);
    const devices = options.devices ?? [];
    if (!Array.isArray(devices)) throw new TypeError("options.devices must be an array");
    devices.forEach((d, i) => checkDeviceArg(d, `options.devices[${i}]`));
    const lib = native();
    const pointer = openControl(op);
    const id = new Uint8Array(layout.blksnap_uuid.size);
    const rc = lib.blksnap_snapshot_create(pointer, path, sectors, id);
    if (rc < 0) {
      lib.blksnap_ctl_close(pointer);
      unwrap(rc, op, options.diffStorage);
    }
    const snapshot = new Snapshot(pointer, id, true);
    try {
      for (const device of devices) snapshot.add(device);
    } catch (err) {
      try {
        snapshot.destroy();
      } catch {
        // The add's error is the one to report.
      }
      throw err;
    }
    return snapshot;
  }

  /**
   * A handle on an existing snapshot, by id (from {@linkcode Snapshot.collect}
   * or another process). Not owned: disposing it does not destroy it.
   * Throws `TypeError` if `id` is not a UUID; the id is not checked until
   * used.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * for (const id of Snapshot.collect()) {
   *   using snapshot = Snapshot.open(id);
   *   snapshot.destroy();
   * }
   * ```
   */
  static open(id: string): Snapshot {
    const bytes = parseUuid(id, "id");
    return new Snapshot(openControl("Snapshot.open"), bytes, false);
  }

  /**
   * The ids of all snapshots in the kernel.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * console.log(Snapshot.collect());
   * ```
   */
  static collect(): string[] {
    const op = "Snapshot.collect";
    const lib = native();
    const pointer = openControl(op);
    try {
      const count = new Uint32Array(1);
      for (let attempt = 0; attempt < 8; attempt++) {
        unwrap(lib.blksnap_snapshot_collect(pointer, null, 0, count), op);
        const capacity = Math.min(count[0] + 4, U32_MAX);
        if (count[0] === 0) return [];
        const ids = new Uint8Array(capacity * layout.blksnap_uuid.size);
        const rc = lib.blksnap_snapshot_collect(pointer, ids, capacity, count);
        if (rc === -ENODATA) continue; // more appeared meanwhile
        unwrap(rc, op);
        const out: string[] = [];
        for (let i = 0; i < count[0]; i++) {
          out.push(formatUuid(ids.subarray(i * 16, i * 16 + 16)));
        }
        return out;
      }
      throw new BlksnapError(Errno.EAGAIN, op, { detail: "the list kept growing" });
    } finally {
      lib.blksnap_ctl_close(pointer);
    }
  }

  /**
   * The snapshot's id (UUID text).
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(snapshot.id);
   * ```
   */
  get id(): string {
    return this.#idText;
  }

  /**
   * True if disposing this object destroys the snapshot (it was made by
   * {@linkcode Snapshot.create} and not yet destroyed).
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.assert(snapshot.owned);
   * ```
   */
  get owned(): boolean {
    return this.#owned;
  }

  /**
   * True once closed or destroyed.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * const snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * snapshot.destroy();
   * console.assert(snapshot.closed);
   * ```
   */
  get closed(): boolean {
    return this.#handle.closed;
  }

  /**
   * Adds a device (path or open {@linkcode Tracker}; its tracker must be
   * attached) to the snapshot before it is taken. Throws a
   * {@linkcode BlksnapError}: `ENOENT` (not attached), `ESRCH` (no such
   * snapshot), `EALREADY`, `EBUSY` (in another snapshot), `EPERM`.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * snapshot.add("/dev/vdb");
   * ```
   */
  add(device: string | Tracker): void {
    const op = "Snapshot.add";
    const target = checkDeviceArg(device, "device");
    this.#handle.use(op);
    withTracker(target, (tracker) => {
      const pointer = tracker.unsafeHandle;
      if (pointer === null) {
        throw new BlksnapError(Errno.EBADF, op, { detail: "the tracker is closed" });
      }
      unwrap(native().blksnap_dev_snapshot_add(pointer, this.#id), op, tracker.device);
    });
  }

  /**
   * Takes the snapshot: all its devices at the same instant (file systems
   * are frozen for the switch), then creates the images. Throws a
   * {@linkcode BlksnapError}: `ESRCH`, `ENODEV` (no devices), `EALREADY`,
   * `EFAULT` (a difference area failed at once).
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n, devices: ["/dev/vdb"] });
   * snapshot.take();
   * ```
   */
  take(): void {
    const op = "Snapshot.take";
    unwrap(native().blksnap_snapshot_take(this.#handle.use(op), this.#id), op, this.#idText);
  }

  /**
   * The device's state in its snapshot (see {@linkcode Tracker.snapshotInfo}).
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.open(Snapshot.collect()[0]);
   * console.log(snapshot.info("/dev/vdb"));
   * ```
   */
  info(device: string | Tracker): DeviceSnapshotInfo {
    const target = checkDeviceArg(device, "device");
    this.#handle.use("Snapshot.info");
    return withTracker(target, (tracker) => tracker.snapshotInfo());
  }

  /**
   * The path of the device's image (`/dev/blksnap-<major>-<minor>`), once
   * taken. Throws a {@linkcode BlksnapError} with `ENODEV` if the snapshot
   * has no image of it yet.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n, devices: ["/dev/vdb"] });
   * snapshot.take();
   * const image = await Deno.open(snapshot.imagePath("/dev/vdb"));
   * image.close();
   * ```
   */
  imagePath(device: string | Tracker): string {
    const { image } = this.info(device);
    if (image === null) {
      const name = device instanceof Tracker ? device.device : device;
      throw new BlksnapError(ENODEV, "Snapshot.imagePath", {
        detail: `${name} has no image: the snapshot is not taken`,
      });
    }
    return `/dev/${image}`;
  }

  /**
   * Waits up to `timeoutMs` for the snapshot's next event, on a worker
   * thread. Resolves to the event, or `null` if the time passed (or the
   * wait was interrupted) with none. Rejects with a {@linkcode BlksnapError}
   * `ESRCH` once the snapshot is destroyed. Throws `RangeError` for a
   * timeout outside 0..2^32-1.
   *
   * @example Watch until the snapshot goes away
   * ```ts ignore
   * import { BlksnapError, Snapshot } from "@blksnap/blksnap";
   * using snapshot = Snapshot.open(Snapshot.collect()[0]);
   * try {
   *   for (;;) {
   *     const event = await snapshot.waitEvent(1000);
   *     if (event) console.log(event);
   *   }
   * } catch (err) {
   *   if (!(err instanceof BlksnapError && err.code === "ESRCH")) throw err;
   * }
   * ```
   */
  async waitEvent(timeoutMs: number): Promise<SnapshotEvent | null> {
    const op = "Snapshot.waitEvent";
    if (typeof timeoutMs !== "number") {
      throw new TypeError(`timeoutMs must be a number, got ${typeof timeoutMs}`);
    }
    if (!Number.isInteger(timeoutMs) || timeoutMs < 0 || timeoutMs > U32_MAX) {
      throw new RangeError(`timeoutMs must be an integer 0..2^32-1, got ${timeoutMs}`);
    }
    const lib = native();
    const buf = new Uint8Array(layout.blksnap_snapshot_event.size);
    const id = this.#id;
    const rc = await this.#handle.useAsync(
      op,
      (p) => lib.blksnap_snapshot_wait_event_async(p, id, timeoutMs, buf),
    );
    if (rc === -ENOENT || rc === -EINTR) return null;
    unwrap(rc, op, this.#idText);
    return decodeEvent(buf);
  }

  /**
   * Destroys the snapshot (its images disappear, its storage is released;
   * trackers keep tracking), then closes this object. Throws a
   * {@linkcode BlksnapError}: `ENODEV` (no such snapshot; this object is
   * closed anyway).
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * const snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * snapshot.destroy();
   * ```
   */
  destroy(): void {
    const op = "Snapshot.destroy";
    const rc = native().blksnap_snapshot_destroy(this.#handle.use(op), this.#id);
    this.#owned = false;
    this.close();
    unwrap(rc, op, this.#idText);
  }

  /**
   * Releases the handle; the snapshot stays. Idempotent.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * const snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * const id = snapshot.id;
   * snapshot.close(); // the snapshot lives on
   * Snapshot.open(id).destroy();
   * ```
   */
  close(): void {
    this.#handle.close();
  }

  /**
   * Destroys the snapshot if owned (see the class doc), then closes.
   *
   * @example
   * ```ts ignore
   * import { Snapshot } from "@blksnap/blksnap";
   * {
   *   using snapshot = Snapshot.create({ diffStorage: "/var/tmp", limit: 1n << 30n });
   * } // destroyed here
   * ```
   */
  [Symbol.dispose](): void {
    if (this.#owned && !this.closed) {
      try {
        this.destroy();
      } catch (err) {
        const gone = err instanceof BlksnapError && (err.errno === ENODEV || err.errno === ESRCH);
        if (!gone) throw err;
      }
    }
    this.close();
  }

  /** Prints the id and state, not a pointer. */
  [Symbol.for("Deno.customInspect")](): string {
    const state = this.closed ? "closed" : this.#owned ? "owned" : "open";
    return `Snapshot { id: "${this.#idText}", ${state} }`;
  }
}

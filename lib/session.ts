/**
 * A snapshot session for backup flows: everything between "I want a
 * consistent view of these devices" and "done".
 *
 * @module
 */

import type { CbtInfo, CbtMap } from "./cbt_map.ts";
import { BlksnapError } from "./errors.ts";
import { Snapshot, type SnapshotEvent } from "./snapshot.ts";
import { Tracker } from "./tracker.ts";
import { Errno } from "./ffi/errno.ts";

/**
 * Options of {@linkcode Session.start}.
 *
 * @example
 * ```ts
 * import type { SessionOptions, SnapshotEvent } from "@blksnap/blksnap";
 * const options: SessionOptions = {
 *   devices: ["/dev/vdb", "/dev/vdc"],
 *   diffStorage: "/var/tmp",
 *   limit: 8n << 30n,
 *   onEvent: (event: SnapshotEvent) => console.warn(event),
 * };
 * console.assert(options.devices.length === 2);
 * ```
 */
export interface SessionOptions {
  /** The devices to snapshot together (paths); at least one. */
  devices: readonly string[];
  /** The difference storage, as in `Snapshot.create`. */
  diffStorage: string;
  /** The difference storage's limit in bytes, as in `Snapshot.create`. */
  limit: bigint | number;
  /**
   * How long each background wait for an event lasts, in milliseconds;
   * closing the session takes at most about this long.
   * @default {1000}
   */
  pollMs?: number;
  /**
   * Called for every event of the snapshot, from the background watcher.
   * @default {undefined}
   */
  onEvent?: (event: SnapshotEvent) => void;
}

function isErrno(err: unknown, ...codes: string[]): boolean {
  return err instanceof BlksnapError && codes.includes(err.code);
}

/**
 * A taken snapshot of a set of devices, with its trackers and a background
 * event watcher:
 *
 * 1. `Session.start()` opens each device, attaches its tracker where needed
 *    (trackers stay attached after the session: that is what makes the next
 *    backup incremental), creates the snapshot, adds the devices and takes
 *    it, then starts watching events.
 * 2. During the session: `imagePath(device)` to read the frozen image,
 *    `cbtMap(device)` / `cbtInfo(device)` for what changed, `events` and
 *    `corrupted` to check the snapshot stayed whole (check `corrupted`
 *    after reading an image: a corrupted image reads fail with EIO).
 * 3. `close()` (or `await using`) stops the watcher, destroys the snapshot
 *    and closes the trackers.
 *
 * If any start step fails, what was done is undone (the snapshot destroyed,
 * the trackers closed) and the error thrown.
 *
 * @example Back up the changed extents of one device
 * ```ts ignore
 * import { Session } from "@blksnap/blksnap";
 * await using session = await Session.start({
 *   devices: ["/dev/vdb"],
 *   diffStorage: "/var/tmp",
 *   limit: 4n << 30n,
 * });
 * const map = session.cbtMap("/dev/vdb");
 * using image = await Deno.open(session.imagePath("/dev/vdb"));
 * for (const { offset, length } of map.changedExtents(0)) {
 *   console.log(offset, length); // read [offset, offset + length) from image
 * }
 * if (session.corrupted) throw new Error("the snapshot overflowed");
 * ```
 */
export class Session implements AsyncDisposable {
  #snapshot: Snapshot;
  #trackers: Map<string, Tracker>;
  #attached: string[];
  #events: SnapshotEvent[] = [];
  #watcher: Promise<void> = Promise.resolve();
  #watchError: unknown = undefined;
  #stopping = false;
  #closed = false;

  private constructor(snapshot: Snapshot, trackers: Map<string, Tracker>, attached: string[]) {
    this.#snapshot = snapshot;
    this.#trackers = trackers;
    this.#attached = attached;
  }

  /**
   * Attaches, creates, adds, takes and starts watching (see the class doc).
   * Throws `TypeError`/`RangeError` for bad options (before touching any
   * device), and the {@linkcode BlksnapError} of the step that failed.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({
   *   devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n,
   * });
   * console.log(session.snapshot.id);
   * ```
   */
  static async start(options: SessionOptions): Promise<Session> {
    if (typeof options !== "object" || options === null) {
      throw new TypeError("options must be an object");
    }
    const { devices, pollMs = 1000, onEvent } = options;
    if (!Array.isArray(devices) || devices.length === 0) {
      throw new TypeError("options.devices must be a non-empty array of paths");
    }
    devices.forEach((d, i) => {
      if (typeof d !== "string" || d === "") {
        throw new TypeError(`options.devices[${i}] must be a non-empty string`);
      }
    });
    if (new Set(devices).size !== devices.length) {
      throw new TypeError("options.devices has duplicates");
    }
    if (!Number.isInteger(pollMs) || pollMs < 1 || pollMs > 0xffff_ffff) {
      throw new RangeError(`options.pollMs must be an integer 1..2^32-1, got ${pollMs}`);
    }
    if (onEvent !== undefined && typeof onEvent !== "function") {
      throw new TypeError("options.onEvent must be a function");
    }
    // Validate diffStorage and limit without creating anything.
    if (typeof options.diffStorage !== "string" || options.diffStorage === "") {
      throw new TypeError("options.diffStorage must be a non-empty string");
    }
    if (typeof options.limit !== "bigint" && typeof options.limit !== "number") {
      throw new TypeError("options.limit must be a bigint or a number");
    }

    const trackers = new Map<string, Tracker>();
    const attached: string[] = [];
    let snapshot: Snapshot | undefined;
    try {
      for (const device of devices) {
        const tracker = Tracker.open(device);
        trackers.set(device, tracker);
        if (tracker.attach()) attached.push(device);
      }
      snapshot = Snapshot.create({
        diffStorage: options.diffStorage,
        limit: options.limit,
        devices: [...trackers.values()],
      });
      snapshot.take();
    } catch (err) {
      if (snapshot !== undefined) {
        try {
          snapshot.destroy();
        } catch {
          // The original error is the one to report.
        }
      }
      for (const tracker of trackers.values()) tracker.close();
      throw err;
    }
    const session = new Session(snapshot, trackers, attached);
    session.#watch(pollMs, onEvent);
    return await Promise.resolve(session);
  }

  #watch(pollMs: number, onEvent?: (event: SnapshotEvent) => void): void {
    const snapshot = this.#snapshot;
    this.#watcher = (async () => {
      while (!this.#stopping) {
        let event: SnapshotEvent | null;
        try {
          event = await snapshot.waitEvent(pollMs);
        } catch (err) {
          // ESRCH: destroyed; EBADF: closed under us. Both end the watch.
          if (!isErrno(err, "ESRCH", "EBADF")) this.#watchError = err;
          return;
        }
        if (event === null) continue;
        this.#events.push(event);
        try {
          onEvent?.(event);
        } catch (err) {
          this.#watchError ??= err;
        }
      }
    })();
  }

  /**
   * The snapshot (owned by the session: do not destroy it yourself).
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.snapshot.id);
   * ```
   */
  get snapshot(): Snapshot {
    return this.#snapshot;
  }

  /**
   * The session's devices, in the order given.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.devices);
   * ```
   */
  get devices(): readonly string[] {
    return [...this.#trackers.keys()];
  }

  /**
   * The devices whose trackers this session attached (they were not
   * attached before: their first backup must be full).
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * if (session.newlyAttached.length) console.log("first run: full backup");
   * ```
   */
  get newlyAttached(): readonly string[] {
    return [...this.#attached];
  }

  /**
   * The events seen so far, oldest first.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.events.length);
   * ```
   */
  get events(): readonly SnapshotEvent[] {
    return [...this.#events];
  }

  /**
   * True if any device's snapshot is corrupted: a `"corrupted"` event was
   * seen, or a device reports an error code now.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * if (session.corrupted) console.error("the image is not usable");
   * ```
   */
  get corrupted(): boolean {
    if (this.#events.some((e) => e.type === "corrupted")) return true;
    if (this.#closed) return false;
    for (const tracker of this.#trackers.values()) {
      if (tracker.snapshotInfo().errorCode !== 0) return true;
    }
    return false;
  }

  /**
   * The open tracker of one of the session's devices.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.tracker("/dev/vdb").transport);
   * ```
   */
  tracker(device: string): Tracker {
    const tracker = this.#trackers.get(device);
    if (tracker === undefined) {
      throw new RangeError(`${device} is not one of the session's devices`);
    }
    if (this.#closed) {
      throw new BlksnapError(Errno.EBADF, "Session.tracker", {
        detail: "the session is closed",
      });
    }
    return tracker;
  }

  /**
   * The path of a device's image.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.imagePath("/dev/vdb"));
   * ```
   */
  imagePath(device: string): string {
    return this.#snapshot.imagePath(this.tracker(device));
  }

  /**
   * A device's CBT map as frozen by this session's take.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * console.log(session.cbtMap("/dev/vdb").changedBytes(0));
   * ```
   */
  cbtMap(device: string): CbtMap {
    return this.tracker(device).readCbtMap();
  }

  /**
   * A device's CBT parameters; save `generationId` and `changesNumber` as
   * the cursor of the next incremental backup.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * const { generationId, changesNumber } = session.cbtInfo("/dev/vdb");
   * console.log(generationId, changesNumber);
   * ```
   */
  cbtInfo(device: string): CbtInfo {
    return this.tracker(device).cbtInfo();
  }

  /**
   * Stops the watcher, destroys the snapshot and closes the trackers.
   * Idempotent. Rethrows an error the watcher hit (other than the snapshot
   * going away) or an `onEvent` callback threw.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * const session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * await session.close();
   * ```
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#stopping = true;
    let destroyError: unknown = undefined;
    try {
      this.#snapshot.destroy();
    } catch (err) {
      if (!isErrno(err, "ENODEV", "ESRCH", "EBADF")) destroyError = err;
    }
    await this.#watcher;
    for (const tracker of this.#trackers.values()) tracker.close();
    if (destroyError !== undefined) throw destroyError;
    if (this.#watchError !== undefined) throw this.#watchError;
  }

  /**
   * Same as {@linkcode Session.close}, for `await using`.
   *
   * @example
   * ```ts ignore
   * import { Session } from "@blksnap/blksnap";
   * {
   *   await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
   * } // destroyed here
   * ```
   */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

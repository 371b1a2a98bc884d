/**
 * A {@linkcode BackupSource} backed by a snapshot image and the tracker's CBT
 * map as the take froze it ({@linkcode SnapshotSource}). The flow that takes
 * the snapshot and backs up each device is `backupDevices` in
 * backup_devices.ts.
 *
 * @module
 */

import type { Session } from "../session.ts";
import type { DeviceIdentity } from "./manifest.ts";
import { type BackupSource, type CbtMapLike, FileSource } from "./source.ts";

/**
 * A device as a snapshot session froze it: reads go to the snapshot image,
 * `cbt` is the tracker's map as frozen by the take.
 *
 * @example Back up one device of a session
 * ```ts ignore
 * import { Session } from "../../mod.ts";
 * import { backup, Repository, SnapshotSource } from "./mod.ts";
 * await using session = await Session.start({ devices: ["/dev/vdb"], diffStorage: "/var/tmp", limit: 1n << 30n });
 * using source = await SnapshotSource.open(session, "/dev/vdb");
 * const { decision } = await backup(source, await Repository.open("/backup/repo"));
 * console.log(decision.mode, decision.reason);
 * ```
 */
export class SnapshotSource implements BackupSource, Disposable {
  /** The device's identity (its path unless given). */
  readonly identity: DeviceIdentity;
  /** Capacity in bytes: the image's size. */
  readonly capacity: bigint;
  /** The CBT map read after the take. */
  readonly cbt: CbtMapLike;
  /** Path of the snapshot image read. */
  readonly imagePath: string;
  readonly #file: FileSource;

  private constructor(file: FileSource, imagePath: string, cbt: CbtMapLike) {
    this.#file = file;
    this.identity = file.identity;
    this.capacity = file.capacity;
    this.cbt = cbt;
    this.imagePath = imagePath;
  }

  /** Open `device`'s image in `session`, with its CBT map. */
  static async open(
    session: Session,
    device: string,
    identity: DeviceIdentity = { name: device },
  ): Promise<SnapshotSource> {
    const imagePath = session.imagePath(device);
    const cbt = await session.tracker(device).readCbtMapAsync();
    const file = await FileSource.open(imagePath, { identity, cbt });
    return new SnapshotSource(file, imagePath, cbt);
  }

  /** Read from the image (with `O_DIRECT` when `--allow-ffi` is given); short only at its end. */
  read(offset: bigint, buf: Uint8Array): Promise<number> {
    return this.#file.read(offset, buf);
  }

  /** Reads the image serves at once. */
  get parallelReads(): number {
    return this.#file.parallelReads;
  }

  /** A buffer to read the image into (aligned for `O_DIRECT`). */
  allocate(length: number): Uint8Array {
    return this.#file.allocate(length);
  }

  /** Close the image. Idempotent. */
  close(): void {
    this.#file.close();
  }

  /** Same as {@linkcode SnapshotSource.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

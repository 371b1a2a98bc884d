/**
 * What the backup flow reads: an abstract {@linkcode BackupSource} (a device
 * image with an optional CBT map), and {@linkcode FileSource}, which reads a
 * regular file or a block device such as a snapshot image.
 *
 * @module
 */

import type { DeviceIdentity } from "./manifest.ts";

/** A byte range reported as changed by CBT. */
export interface ChangedExtent {
  /** Byte offset. */
  offset: bigint;
  /** Length in bytes. */
  length: bigint;
}

/**
 * The part of a CBT map the backup flow uses. `CbtMap` from `lib/cbt_map.ts`
 * fits it structurally; tests build one from bytes.
 */
export interface CbtMapLike {
  /** Tracker state the map was read at. */
  readonly info: {
    /** Capacity of the tracked device in bytes. */
    deviceCapacity: bigint;
    /** CBT block size in bytes. */
    blockSize: number;
    /** Generation UUID of the tracker. */
    generationId: string;
    /** Changes number at the snapshot. */
    changesNumber: number;
  };
  /** Byte ranges of blocks changed after changes number `since`, coalesced. */
  changedExtents(since: number): Iterable<ChangedExtent>;
}

/** A device image the backup flow reads from. */
export interface BackupSource {
  /** Which device this is; backups chain by `identity.id ?? identity.name`. */
  readonly identity: DeviceIdentity;
  /** Size in bytes. */
  readonly capacity: bigint;
  /** CBT map read at the snapshot, or absent when the device has no tracker. */
  readonly cbt?: CbtMapLike | null;
  /**
   * Read into `buf` from byte `offset`; returns the bytes read, fewer than
   * `buf.length` only at the end of the device.
   */
  read(offset: bigint, buf: Uint8Array): Promise<number>;
}

/** Options of {@linkcode FileSource.open}. */
export interface FileSourceOptions {
  /** Device identity. @default { name: path } */
  identity?: DeviceIdentity;
  /** CBT map read at the snapshot. @default undefined */
  cbt?: CbtMapLike | null;
}

/**
 * A {@linkcode BackupSource} over a regular file or a block device (for
 * example a snapshot image).
 *
 * @example Back up an image file
 * ```ts ignore
 * import { FileSource } from "./source.ts";
 * using source = await FileSource.open("/var/tmp/disk.img");
 * console.log(source.capacity);
 * ```
 */
export class FileSource implements BackupSource, Disposable {
  /** Device identity. */
  readonly identity: DeviceIdentity;
  /** Size in bytes. */
  readonly capacity: bigint;
  /** CBT map, if any. */
  readonly cbt: CbtMapLike | null;
  readonly #file: Deno.FsFile;
  #open = true;

  private constructor(
    file: Deno.FsFile,
    capacity: bigint,
    identity: DeviceIdentity,
    cbt: CbtMapLike | null,
  ) {
    this.#file = file;
    this.capacity = capacity;
    this.identity = identity;
    this.cbt = cbt;
  }

  /** Open `path` read-only; its size (seek to end) is the capacity. */
  static async open(path: string, options: FileSourceOptions = {}): Promise<FileSource> {
    const file = await Deno.open(path, { read: true });
    try {
      const end = await file.seek(0, Deno.SeekMode.End);
      return new FileSource(
        file,
        BigInt(end),
        options.identity ?? { name: path },
        options.cbt ?? null,
      );
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Read into `buf` from `offset`; short only at the end. */
  async read(offset: bigint, buf: Uint8Array): Promise<number> {
    await this.#file.seek(offset, Deno.SeekMode.Start);
    let done = 0;
    while (done < buf.length) {
      const n = await this.#file.read(buf.subarray(done));
      if (n === null) break;
      done += n;
    }
    return done;
  }

  /** Close the file. Idempotent. */
  close(): void {
    if (!this.#open) return;
    this.#open = false;
    this.#file.close();
  }

  /** Same as {@linkcode FileSource.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

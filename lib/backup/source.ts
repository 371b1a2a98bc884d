/**
 * What the backup flow reads: an abstract {@linkcode BackupSource} (a device
 * image with an optional CBT map), and {@linkcode FileSource}, which reads a
 * regular file or a block device such as a snapshot image.
 *
 * @module
 */

import type { DeviceIdentity } from "./manifest.ts";
import { PositionalFile } from "./positional_file.ts";

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
  /** Reads this source serves at once (calls of `read` in flight). @default 1 */
  readonly parallelReads?: number;
  /** A buffer of `length` bytes this source reads into best (aligned for `O_DIRECT`). */
  allocate?(length: number): Uint8Array;
}

/** Options of {@linkcode FileSource.open}. */
export interface FileSourceOptions {
  /** Device identity. @default { name: path } */
  identity?: DeviceIdentity;
  /** CBT map read at the snapshot. @default undefined */
  cbt?: CbtMapLike | null;
  /**
   * Read with `O_DIRECT`, around the page cache: a backup then neither
   * evicts the host's cached data nor pays a copy. Needs `--allow-ffi`;
   * without it, or where the file system refuses, reads are buffered.
   * @default true for a block device, false for a regular file
   */
  direct?: boolean;
}

/**
 * A {@linkcode BackupSource} over a regular file or a block device (for
 * example a snapshot image). With `--allow-ffi` it reads at positions
 * through libc, several reads at once, and a block device with `O_DIRECT`
 * (see {@linkcode FileSourceOptions.direct}); without, through Deno's file
 * API one read at a time.
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
  /** Reads served at once: several through libc, one through Deno's file API. */
  readonly parallelReads: number;
  readonly #file: PositionalFile | Deno.FsFile;
  /** Reads through Deno's file API seek first: one at a time, chained here. */
  #chain: Promise<unknown> = Promise.resolve();
  #open = true;

  private constructor(
    file: PositionalFile | Deno.FsFile,
    capacity: bigint,
    identity: DeviceIdentity,
    cbt: CbtMapLike | null,
  ) {
    this.#file = file;
    this.capacity = capacity;
    this.identity = identity;
    this.cbt = cbt;
    this.parallelReads = file instanceof PositionalFile ? file.parallelism : 1;
  }

  /** Open `path` read-only; its size (seek to end) is the capacity. */
  static async open(path: string, options: FileSourceOptions = {}): Promise<FileSource> {
    const identity = options.identity ?? { name: path };
    const cbt = options.cbt ?? null;
    const direct = options.direct ?? (await Deno.stat(path)).isBlockDevice === true;
    const positional = PositionalFile.open(path, { direct });
    if (positional) {
      try {
        return new FileSource(positional, positional.size(), identity, cbt);
      } catch (e) {
        positional.close();
        throw e;
      }
    }
    const file = await Deno.open(path, { read: true });
    try {
      const end = await file.seek(0, Deno.SeekMode.End);
      return new FileSource(file, BigInt(end), identity, cbt);
    } catch (e) {
      file.close();
      throw e;
    }
  }

  /** Whether reads bypass the page cache (`O_DIRECT`). */
  get direct(): boolean {
    return this.#file instanceof PositionalFile && this.#file.direct;
  }

  /** A buffer to read into: aligned for `O_DIRECT` when reads are direct. */
  allocate(length: number): Uint8Array {
    return this.#file instanceof PositionalFile
      ? this.#file.allocate(length)
      : new Uint8Array(length);
  }

  /** Read into `buf` from `offset`; short only at the end. */
  read(offset: bigint, buf: Uint8Array): Promise<number> {
    const file = this.#file;
    if (file instanceof PositionalFile) return file.read(offset, buf);
    const next = this.#chain.catch(() => {}).then(async () => {
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < buf.length) {
        const n = await file.read(buf.subarray(done));
        if (n === null) break;
        done += n;
      }
      return done;
    });
    this.#chain = next;
    return next;
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

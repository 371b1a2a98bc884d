/**
 * The restore flow: write one backup to a file or a block device, checking
 * every chunk's digest before its bytes are written.
 *
 * @module
 */

import { blockDeviceUse } from "../block_device.ts";
import { range, runBounded } from "./_pool.ts";
import { ChunkReader } from "./chunk_reader.ts";
import { defaultThreads } from "./chunk_workers.ts";
import type { DamageRecord } from "./damage.ts";
import { ioError, isAbortOf, RepoError } from "./errors.ts";
import { bytesEqual, chunkLengthOf, toHex, ZERO_DIGEST } from "./format.ts";
import { digestAt, referencedDigests } from "./index_file.ts";
import type { Repository } from "./repository.ts";
import { TargetWriter } from "./target_writer.ts";
import type { Progress } from "./types.ts";

/** Options of {@linkcode restore}. */
export interface RestoreOptions {
  /** Grow an existing regular file smaller than the capacity instead of refusing. @default false */
  resize?: boolean;
  /** Decompress and check every chunk before the target is opened. @default false */
  verifyFirst?: boolean;
  /** Chunks read, checked and written at once. @default 2 × worker threads + 2 */
  concurrency?: number;
  /**
   * Worker threads that decompress and check chunks (shared with the
   * process's other flows, kept between them, never keeping the process
   * alive); 0 does it on the calling thread. @default one per core on 2 or
   * more cores when the chunks to decode hold 256 MiB or more, else 0
   * (`defaultThreads` in chunk_workers.ts; measured: docs/benchmarks.md,
   * "Worker threads by default")
   *
   * @example A restore on the calling thread only
   * ```ts ignore
   * await restore(repo, backupId, "/dev/vdb", { workers: 0 });
   * ```
   */
  workers?: number;
  /**
   * Write with `O_DIRECT` (around the page cache; needs `--allow-ffi`).
   * @default true for a block device, false for a file
   */
  direct?: boolean;
  /** Called after each chunk. */
  onProgress?: (progress: Progress) => void;
  /** The mount table to check block-device targets against. @default "/proc/self/mountinfo" */
  mountInfoPath?: string;
  /** Check that a block-device target is not mounted or held (UNSAFE to disable). @default true */
  checkMounted?: boolean;
  /**
   * Abort the restore (checked before each chunk): a new file is removed,
   * an existing file or device is left partly written; throws
   * `signal.reason` as is.
   */
  signal?: AbortSignal;
}

/** The result of {@linkcode restore}. */
export interface RestoreResult {
  /** The backup restored. */
  backupId: string;
  /** Bytes of the image. */
  capacity: bigint;
  /** Bytes written to the target (zero chunks skipped on new files are not counted). */
  bytesWritten: number;
  /** Zero chunks left as holes. */
  chunksSkipped: number;
  /** What the target was. */
  targetKind: "new-file" | "file" | "block-device";
}

export { devNumbers, mountedDevices } from "../block_device.ts";

/**
 * Refuse a block device that is mounted, has a mounted partition, or is held
 * by another device (device-mapper, md), or that cannot be checked.
 */
async function checkBlockDeviceFree(
  target: string,
  rdev: number,
  mountInfoPath: string,
): Promise<void> {
  const use = await blockDeviceUse(target, rdev, mountInfoPath);
  const refuse = (why: string): never => {
    throw new RepoError("BAD_TARGET", `Target ${target} (${use.device}) ${why}`, { path: target });
  };
  if (use.holders.length > 0) refuse(`is in use by ${use.holders.join(", ")}`);
  if (use.mounted.length > 0) refuse(`is mounted (${use.mounted.join(", ")})`);
  if (use.unknown !== null) refuse(`cannot be checked for mounts (${use.unknown})`);
}

/**
 * Restore backup `backupId` of `repo` to `target`: a new file (created
 * sparse, zero chunks left as holes), an existing regular file, or a block
 * device. Refuses a target smaller than the capacity and a mounted or held
 * block device. The manifest, index and the presence of every chunk are
 * checked before the target is opened; every chunk's SHA-256 is checked
 * before it is written. A new file is removed if the restore fails.
 *
 * @example Restore a backup to an image file
 * ```ts ignore
 * import { Repository, restore } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * await restore(repo, "20261124T031600123Z-0a1b2c3d", "/var/tmp/restored.img");
 * ```
 */
export async function restore(
  repo: Repository,
  backupId: string,
  target: string,
  options: RestoreOptions = {},
): Promise<RestoreResult> {
  try {
    return await restoreInner(repo, backupId, target, options);
  } catch (e) {
    throw e instanceof RepoError || isAbortOf(e, options.signal)
      ? e
      : ioError("restore to", target, e);
  }
}

async function restoreInner(
  repo: Repository,
  backupId: string,
  target: string,
  options: RestoreOptions,
): Promise<RestoreResult> {
  const manifest = await repo.readManifest(backupId);
  const index = await repo.readIndex(manifest);
  const { chunkSize, capacity, chunkCount } = index;

  // Every chunk must exist (and, with verifyFirst, be intact) before the target is touched.
  const unique = referencedDigests(index);
  const missing: string[] = [];
  for (const hex of unique.keys()) if (!(await repo.hasChunk(hex))) missing.push(hex);
  // A chunk a deep verify found bad would fail the restore half-way.
  const damage = await repo.readDamage().catch(() => new Map() as DamageRecord);
  const known = [...unique.keys()].filter((hex) => damage.get(hex)?.healed === null);
  if (known.length > 0) {
    throw new RepoError(
      "BAD_CHUNK",
      `Backup ${backupId} needs ${known.length} chunk(s) a deep verify found ` +
        `${damage.get(known[0])!.problem}: ${known.slice(0, 5).join(", ")}; the next backup ` +
        `of the device rewrites them if the data is unchanged, or run \`blksnap repair\``,
      { path: repo.chunkPath(known[0]) },
    );
  }
  if (missing.length > 0) {
    throw new RepoError(
      "BAD_CHUNK",
      `Backup ${backupId} needs ${missing.length} missing chunk(s): ${
        missing.slice(0, 5).join(", ")
      }`,
      { path: repo.chunkPath(missing[0]) },
    );
  }
  // The bytes to decode pick the default threads: every chunk that is not all zeros, each time.
  let toDecode = 0;
  for (let i = 0; i < chunkCount; i++) {
    if (!bytesEqual(digestAt(index, i), ZERO_DIGEST)) toDecode += chunkSize;
  }
  using reader = ChunkReader.start(repo, {
    workers: options.workers ?? defaultThreads(toDecode),
  });
  const concurrency = options.concurrency ?? reader.concurrency;
  if (options.verifyFirst) {
    await runBounded(unique, concurrency, async ([hex, i]) => {
      options.signal?.throwIfAborted();
      await reader.check("deep", hex, chunkSize, chunkLengthOf(i, capacity, chunkSize));
    });
  }

  // Open the target.
  options.signal?.throwIfAborted();
  let st: Deno.FileInfo | null = null;
  try {
    st = await Deno.stat(target);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  let kind: RestoreResult["targetKind"];
  let file: Deno.FsFile;
  if (st === null) {
    kind = "new-file";
    // A restored image holds a whole disk's data: private, like the repository.
    file = await Deno.open(target, { write: true, createNew: true, mode: 0o600 });
    await file.truncate(Number(capacity));
  } else if (st.isFile) {
    kind = "file";
    if (BigInt(st.size) < capacity && !options.resize) {
      throw new RepoError(
        "BAD_TARGET",
        `Target ${target} is ${st.size} bytes, smaller than the ${capacity} bytes of backup ${backupId}`,
        { path: target },
      );
    }
    file = await Deno.open(target, { write: true });
    if (BigInt(st.size) < capacity) await file.truncate(Number(capacity));
  } else if (st.isBlockDevice) {
    kind = "block-device";
    if (options.checkMounted ?? true) {
      await checkBlockDeviceFree(
        target,
        st.rdev ?? 0,
        options.mountInfoPath ?? "/proc/self/mountinfo",
      );
    }
    file = await Deno.open(target, { write: true });
    const size = BigInt(await file.seek(0, Deno.SeekMode.End));
    if (size < capacity) {
      file.close();
      throw new RepoError(
        "BAD_TARGET",
        `Target ${target} is ${size} bytes, smaller than the ${capacity} bytes of backup ${backupId}`,
        { path: target },
      );
    }
  } else {
    throw new RepoError("BAD_TARGET", `Target ${target} is not a file or block device`, {
      path: target,
    });
  }

  const sparse = kind === "new-file";
  const bytesTotal = Number(capacity);
  let bytesDone = 0;
  let bytesWritten = 0;
  let chunksSkipped = 0;
  let writer: TargetWriter | null = null;
  const buffers: Uint8Array[] = [];

  const one = async (i: number): Promise<void> => {
    options.signal?.throwIfAborted();
    const d = digestAt(index, i);
    const len = chunkLengthOf(i, capacity, chunkSize);
    const offset = BigInt(i) * BigInt(chunkSize);
    if (bytesEqual(d, ZERO_DIGEST)) {
      if (sparse) chunksSkipped++;
      else {
        await writer!.writeZeros(offset, len);
        bytesWritten += len;
      }
    } else {
      // Every check passes before a byte of the chunk is written. A buffer per
      // chunk in flight, reused (on threads the bytes land in it; a buffer
      // lost with a failed call is not put back).
      const into = buffers.pop() ?? new Uint8Array(chunkSize);
      const { data, usedInto } = await reader.read(toHex(d), chunkSize, len, into);
      await writer!.write(offset, data);
      // On threads `into` moved and came back as `data`'s buffer; a raw chunk may leave it unused.
      buffers.push(usedInto ? new Uint8Array(data.buffer as ArrayBuffer) : into);
      bytesWritten += len;
    }
    bytesDone += len;
    options.onProgress?.({ bytesDone, bytesTotal });
  };

  try {
    // Writes at positions (several in flight, O_DIRECT to a device) once the checks above passed.
    file.close();
    writer = await TargetWriter.open(target, { direct: options.direct ?? kind === "block-device" });
    await runBounded(range(chunkCount), concurrency, one);
    await writer.sync();
  } catch (e) {
    writer?.close();
    if (kind === "new-file") await Deno.remove(target).catch(() => {});
    else if (bytesWritten > 0 && !isAbortOf(e, options.signal)) {
      // Whatever failed (a bad chunk, the target, a worker thread), say what was touched.
      const err = ioError("restore to", target, e);
      throw new RepoError(
        err.code,
        `${err.message}; ${target} was partly overwritten (${bytesWritten} bytes written)`,
        { path: err.path, cause: e },
      );
    }
    throw e;
  }
  writer.close();
  return { backupId, capacity, bytesWritten, chunksSkipped, targetKind: kind };
}

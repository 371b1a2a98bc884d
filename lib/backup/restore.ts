/**
 * The restore flow: write one backup to a file or a block device, checking
 * every chunk's digest before its bytes are written.
 *
 * @module
 */

import { range, runBounded } from "./_pool.ts";
import { ChunkReader } from "./chunk_reader.ts";
import { ioError, RepoError } from "./errors.ts";
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
   * Worker threads that decompress and check chunks; 0 does it on the
   * calling thread. @default 0
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

/** Major and minor numbers of a Linux `dev_t`. */
export function devNumbers(rdev: number): { major: number; minor: number } {
  const lo = rdev % 2 ** 32;
  const hi = Math.floor(rdev / 2 ** 32);
  return {
    major: ((lo >>> 8) & 0xfff) | ((hi & 0xfffff000) >>> 0),
    minor: (lo & 0xff) | ((lo >>> 12) & 0xfff00),
  };
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

/**
 * Refuse a block device that is mounted, has a mounted partition, or is held
 * by another device (device-mapper, md). Reads sysfs and the mount table when
 * Deno may (`--allow-all`), else asks `lsblk` and `findmnt` (`--allow-run`);
 * refuses when it can do neither.
 */
async function checkBlockDeviceFree(
  target: string,
  rdev: number,
  mountInfoPath: string,
): Promise<void> {
  const { major, minor } = devNumbers(rdev);
  const self = `${major}:${minor}`;
  const devs = new Set([self]);
  const refuse = (why: string): never => {
    throw new RepoError("BAD_TARGET", `Target ${target} (${self}) ${why}`, { path: target });
  };
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
    for await (const h of Deno.readDir(`${sys}/holders`)) refuse(`is in use by ${h.name}`);
  } catch (e) {
    if (e instanceof RepoError) throw e;
  }
  if (!sysOk) {
    const tree = await run("lsblk", ["-rno", "MAJ:MIN,TYPE", target]);
    if (tree !== null) {
      for (const line of tree.split("\n").slice(1)) {
        const [dev, type] = line.trim().split(/\s+/);
        if (!dev) continue;
        if (type === "part") devs.add(dev);
        else refuse(`is in use by a ${type} device ${dev}`);
      }
    }
  }
  const info = (await readText(mountInfoPath)) ??
    (await run("findmnt", ["-rn", "-o", "ID,PARENT,MAJ:MIN"]));
  if (info === null) {
    refuse("cannot be checked for mounts (no access to /proc/self/mountinfo or findmnt)");
  }
  const mounted = mountedDevices(info!);
  for (const d of devs) if (mounted.has(d)) refuse(`is mounted (${d})`);
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
    throw e instanceof RepoError ? e : ioError("restore to", target, e);
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
  if (missing.length > 0) {
    throw new RepoError(
      "BAD_CHUNK",
      `Backup ${backupId} needs ${missing.length} missing chunk(s): ${
        missing.slice(0, 5).join(", ")
      }`,
      { path: repo.chunkPath(missing[0]) },
    );
  }
  using reader = ChunkReader.start(repo, { workers: options.workers });
  const concurrency = options.concurrency ?? reader.concurrency;
  if (options.verifyFirst) {
    await runBounded(unique, concurrency, async ([hex, i]) => {
      await reader.check("deep", hex, chunkSize, chunkLengthOf(i, capacity, chunkSize));
    });
  }

  // Open the target.
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
    file = await Deno.open(target, { write: true, createNew: true });
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

  const one = async (i: number): Promise<void> => {
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
      // Every check passes before a byte of the chunk is written.
      const data = await reader.read(toHex(d), chunkSize, len);
      await writer!.write(offset, data);
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
    throw e;
  }
  writer.close();
  return { backupId, capacity, bytesWritten, chunksSkipped, targetKind: kind };
}

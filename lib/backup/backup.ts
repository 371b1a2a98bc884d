/**
 * The backup flow: decide full or incremental from the CBT cursor, read the
 * chunks that changed (all of them on a full backup), hash, compress and
 * store them with reading and hashing/compressing overlapped, then write the
 * index and the manifest.
 *
 * @module
 */

import { storeChunks } from "./backup_chunks.ts";
import { type DamageRecord, unhealed } from "./damage.ts";
import { decideBackupMode, type Decision, type DecisionParent } from "./decision.ts";
import { ioError, isAbortOf, RepoError } from "./errors.ts";
import {
  chunkCountOf,
  DIGEST_SIZE,
  FORMAT_VERSION,
  newBackupId,
  sha256,
  TEMP_PREFIX,
  toHex,
} from "./format.ts";
import { type BackupIndex, encodeIndex, referencedDigests } from "./index_file.ts";
import {
  type BackupStats,
  type DeviceIdentity,
  deviceKey,
  encodeFailedRun,
  type FailedRun,
  type Manifest,
  MAX_RUN_RECORD_SIZE,
  parseFailedRun,
} from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { markRunning } from "./running.ts";
import { indexName, type PreparedPut, runningName } from "./storage/backend.ts";
import type { BackupSource, ChangedExtent } from "./source.ts";
import type { Progress } from "./types.ts";

/** Options of {@linkcode backup}. */
export interface BackupOptions {
  /** Use this backup as the parent instead of the newest backup of the device. */
  parent?: string;
  /** Take a full backup whatever the CBT says. @default false */
  full?: boolean;
  /** Take a full backup unless the parent passed a deep verify. @default false */
  requireVerifiedParent?: boolean;
  /** Take a full backup if the previous run of this device failed. @default true */
  fullAfterFailedRun?: boolean;
  /**
   * Chunks in flight (read, named, encoded or being stored); each holds a
   * buffer of one chunk. @default 2 × worker threads + 2
   */
  concurrency?: number;
  /**
   * Worker threads that name (hash) and encode (compress, seal) chunks; 0
   * does it on the calling thread. The threads are shared with the
   * process's other flows and kept between them (started on first use,
   * ended after 10 s unused); they never keep the process alive.
   * @default one per core on 2 or more cores when the chunks to read hold
   * 256 MiB or more, else 0
   * (`defaultThreads` in chunk_workers.ts; measured: docs/benchmarks.md,
   * "Worker threads by default")
   *
   * @example A backup on the calling thread only (a host whose other cores are busy)
   * ```ts ignore
   * await backup(source, repo, { workers: 0 });
   * ```
   */
  workers?: number;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Called after each chunk with bytes read so far and bytes to read. */
  onProgress?: (progress: Progress) => void;
  /** Called once the mode is decided, before reading. */
  onDecision?: (decision: Decision) => void;
  /**
   * Abort the run (checked before each chunk is read; the chunks in flight
   * end first): the backup then fails, records the failed run,
   * releases the lock and leaves no backup; it throws `signal.reason` as is.
   */
  signal?: AbortSignal;
}

/** The result of {@linkcode backup}. */
export interface BackupResult {
  /** The manifest written. */
  manifest: Manifest;
  /**
   * Chunks the damage record named that this backup rewrote from the source:
   * every older backup using them is whole again (the next deep verify
   * confirms it).
   */
  healed: string[];
  /** Full or incremental, and why. */
  decision: Decision;
}

/** Sorted, de-duplicated chunk numbers overlapping `extents` (clipped to capacity). */
export function chunksOfExtents(
  extents: Iterable<ChangedExtent>,
  capacity: bigint,
  chunkSize: number,
): number[] {
  const cs = BigInt(chunkSize);
  const set = new Set<number>();
  for (const { offset, length } of extents) {
    if (length <= 0n || offset < 0n || offset >= capacity) continue;
    const end = offset + length > capacity ? capacity : offset + length;
    for (let c = offset / cs; c * cs < end; c++) set.add(Number(c));
  }
  return [...set].sort((a, b) => a - b);
}

/**
 * Whether backup `m` is of the device `identity` names: same key; or, for a
 * device that now has a stable id, a backup made before ids were recorded
 * (no id, same path), so upgrading keeps the chain. The CBT generation check
 * still makes the next backup full if that path was another device then.
 */
function sameDevice(m: Manifest, identity: DeviceIdentity): boolean {
  if (deviceKey(m.device) === deviceKey(identity)) return true;
  return identity.id !== undefined && m.device.id === null && m.device.name === identity.name;
}

async function findParent(
  repo: Repository,
  identity: DeviceIdentity,
  explicit: string | undefined,
): Promise<{ manifest: Manifest | null; problem?: string }> {
  if (explicit !== undefined) {
    try {
      const m = await repo.readManifest(explicit);
      if (!sameDevice(m, identity)) {
        return { manifest: null, problem: `parent ${explicit} is a backup of another device` };
      }
      return { manifest: m };
    } catch (e) {
      return { manifest: null, problem: `parent ${explicit} unusable: ${(e as Error).message}` };
    }
  }
  const ids = await repo.listBackupIds();
  for (let i = ids.length - 1; i >= 0; i--) {
    try {
      const m = await repo.readManifest(ids[i]);
      if (sameDevice(m, identity)) return { manifest: m };
    } catch {
      // a corrupt manifest is reported by verify; it cannot be a parent
    }
  }
  return { manifest: null };
}

async function lastFailedRun(
  repo: Repository,
  key: string,
  after: string,
): Promise<FailedRun | null> {
  let last: FailedRun | null = null;
  for await (const { name } of repo.list("runs/")) {
    if (!name.endsWith(".json") || name.slice(5).startsWith(TEMP_PREFIX)) continue;
    try {
      const path = repo.backend.display(name);
      const bytes = await repo.backend.get(name, MAX_RUN_RECORD_SIZE);
      if (bytes === null) continue;
      const r = parseFailedRun(bytes, path);
      if (r.device === key && r.startTime > after && (!last || r.startTime > last.startTime)) {
        last = r;
      }
    } catch {
      // unreadable record: ignored
    }
  }
  return last;
}

/**
 * Back up `source` into `repo`. Holds the repository lock for the whole run.
 * On any failure nothing is listed: chunks already stored stay for `gc`, the
 * index (if written) is removed, no manifest is written, and a failed-run
 * record is left in `runs/` (best effort).
 *
 * @example Full, then incremental backups of an image file
 * ```ts ignore
 * import { backup, FileSource, Repository } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * using source = await FileSource.open("/dev/blksnap-image_253:0");
 * const { manifest, decision } = await backup(source, repo);
 * console.log(manifest.id, decision.mode, decision.reason);
 * ```
 */
export async function backup(
  source: BackupSource,
  repo: Repository,
  options: BackupOptions = {},
): Promise<BackupResult> {
  const startTime = new Date();
  const id = newBackupId(startTime);
  const key = deviceKey(source.identity);
  const { chunkSize } = repo.config;
  const capacity = source.capacity;
  if (capacity < 0n) throw new RepoError("INVALID", `Negative capacity ${capacity}`);
  const chunkCount = chunkCountOf(capacity, chunkSize);
  // The lock's fsync overlaps the decision's reads; awaited before the first write.
  const lock = await repo.lock("backup", { waitMs: options.lockWaitMs ?? 0, syncLater: true });
  let indexWritten = false;
  // On S3 the lock is advisory: a marker tells gc and prune this backup runs (running.ts).
  const marker = repo.backend.kind === "s3" ? runningName(id) : null;
  try {
    // An abort before the run started still fails it here, so the failed
    // run is recorded and the next backup of the device is full.
    options.signal?.throwIfAborted();
    // ---- decide
    const found = await findParent(repo, source.identity, options.parent);
    let parentIndex: BackupIndex | null = null;
    let parentProblem = found.problem;
    if (found.manifest) {
      try {
        parentIndex = await repo.readIndex(found.manifest);
      } catch (e) {
        parentProblem = `index of parent ${found.manifest.id} unusable: ${(e as Error).message}`;
      }
    }
    const pm = parentIndex ? found.manifest : null;
    const parent: DecisionParent | null = pm
      ? {
        id: pm.id,
        capacity: pm.device.capacity,
        chunkSize: pm.chunkSize,
        cbt: pm.cbt,
        verification: pm.verification,
      }
      : null;
    const info = source.cbt?.info ?? null;
    let extents: ChangedExtent[] | null = null;
    let changedBytes: bigint | undefined;
    if (source.cbt && pm?.cbt && info?.generationId === pm.cbt.generationId) {
      try {
        extents = [...source.cbt.changedExtents(pm.cbt.changesNumber)];
        changedBytes = extents.reduce((s, e) => s + e.length, 0n);
      } catch (e) {
        extents = null;
        parentProblem = `CBT map unreadable: ${(e as Error).message}`;
      }
    }
    const failedRun = pm && (options.fullAfterFailedRun ?? true)
      ? await lastFailedRun(repo, key, pm.startTime)
      : null;
    const decision = decideBackupMode({
      chunkSize,
      capacity,
      cbt: info
        ? {
          generationId: info.generationId,
          changesNumber: info.changesNumber,
          blockSize: info.blockSize,
          deviceCapacity: info.deviceCapacity,
        }
        : null,
      parent,
      parentProblem,
      changedBytes,
      failedRun,
      forceFull: options.full,
      requireVerifiedParent: options.requireVerifiedParent,
    });
    const incremental = decision.mode === "incremental" && extents !== null && parentIndex !== null;
    if (decision.mode === "incremental" && !incremental) {
      decision.mode = "full";
      decision.reason = parentProblem ?? "CBT changes could not be read";
    }
    options.onDecision?.(decision);
    await lock.durable; // before the first write
    // Before the first chunk: gc spares what is younger than this run and what the parent
    // (whose index decides what is not uploaded) references; prune keeps the parent.
    if (marker) await markRunning(repo, id, key, pm?.id ?? null);

    // ---- read, hash, compress, store
    const digests = new Uint8Array(chunkCount * DIGEST_SIZE);
    let toRead: number[];
    if (incremental) {
      digests.set(parentIndex!.digests);
      toRead = chunksOfExtents(extents!, capacity, chunkSize);
    } else {
      toRead = Array.from({ length: chunkCount }, (_, i) => i);
    }
    const stats: BackupStats = {
      bytesRead: 0,
      bytesStored: 0,
      bytesChanged: incremental ? Number(changedBytes ?? 0n) : Number(capacity),
      chunksTotal: chunkCount,
      chunksRead: toRead.length,
      chunksNew: 0,
      chunksDeduplicated: 0,
      chunksReused: chunkCount - toRead.length,
      chunksZero: 0,
    };
    // On S3 the parent's index says what is stored (no HEAD per chunk): a chunk it does not
    // name is uploaded, even if another backup stored it already. Locally a stat is cheap.
    const known = repo.backend.kind === "s3"
      ? new Set(parentIndex ? referencedDigests(parentIndex).keys() : [])
      : null;
    // The index and the manifest are written (and fsynced) as soon as the
    // last chunk is encoded, while its store is still in flight; they become
    // visible in order once every chunk is durable: chunks, then index, then
    // manifest, each step made durable before the next (three fsync rounds).
    let manifest = null as Manifest | null;
    const prepare = async (): Promise<[PreparedPut, PreparedPut]> => {
      const indexBytes = encodeIndex(chunkSize, capacity, digests);
      manifest = {
        format: "blksnap-backup",
        version: FORMAT_VERSION,
        id,
        device: { name: source.identity.name, id: source.identity.id ?? null, capacity },
        chunkSize,
        chunkCount,
        cbt: info
          ? {
            generationId: info.generationId,
            changesNumber: info.changesNumber,
            blockSize: info.blockSize,
          }
          : null,
        parent: incremental ? pm!.id : null,
        mode: incremental ? "incremental" : "full",
        reason: decision.reason,
        startTime: startTime.toISOString(),
        endTime: new Date().toISOString(),
        stats: { ...stats },
        state: "complete",
        indexSha256: toHex(sha256(indexBytes)),
        verification: { state: "none", time: null, badChunks: 0 },
      };
      const settled = await Promise.allSettled([
        repo.prepareIndex(id, indexBytes),
        repo.prepareManifest(manifest),
      ]);
      const ok = settled.flatMap((r) => r.status === "fulfilled" ? [r.value] : []);
      if (ok.length < 2) {
        await Promise.all(ok.map((p) => p.discard()));
        throw (settled.find((r) => r.status === "rejected") as PromiseRejectedResult).reason;
      }
      return ok as [PreparedPut, PreparedPut];
    };
    const staged = { prepared: null as Promise<[PreparedPut, PreparedPut]> | null };
    const startPrepare = (): void => {
      if (staged.prepared) return;
      staged.prepared = prepare();
      staged.prepared.catch(() => {}); // awaited below; never an unhandled rejection meanwhile
    };
    // Chunks a deep verify found bad are rewritten when read again, never
    // deduplicated against. An unreadable record is rewritten by the next
    // marking deep verify; until then nothing is known to be bad.
    const damage = await repo.readDamage().catch(() => new Map() as DamageRecord);
    let healed: string[];
    try {
      healed = await storeChunks(source, repo, toRead, digests, stats, {
        ...options,
        known,
        damaged: unhealed(damage),
        onEncoded: startPrepare,
      });
      startPrepare();
    } catch (e) {
      await staged.prepared?.then((ps) => Promise.all(ps.map((p) => p.discard())), () => {});
      throw e;
    }
    const [index, manifestPut] = await staged.prepared!;
    try {
      indexWritten = true;
      await Promise.all([repo.syncChunkDirs(), index.commit()]);
    } catch (e) {
      await manifestPut.discard();
      throw e;
    }
    await manifestPut.commit();
    if (healed.length > 0) {
      const time = new Date().toISOString();
      for (const hex of healed) {
        const entry = damage.get(hex);
        if (entry) entry.healed = { time, by: id };
      }
      // The backup is complete; a failure here only leaves the chunks marked
      // bad, and the next backup rewrites them again.
      await repo.writeDamage(damage).catch(() => {});
    }
    return { manifest: manifest!, decision, healed };
  } catch (e) {
    if (indexWritten) await repo.backend.delete(indexName(id)).catch(() => {});
    const record: FailedRun = {
      id,
      device: key,
      startTime: startTime.toISOString(),
      error: e instanceof Error ? e.message : String(e),
    };
    await repo.writeRunRecord(id, encodeFailedRun(record)).catch(() => {});
    throw e instanceof RepoError || isAbortOf(e, options.signal)
      ? e
      : ioError("backup", repo.path, e);
  } finally {
    if (marker) await repo.backend.delete(marker).catch(() => {});
    await lock.release().catch(() => {});
  }
}

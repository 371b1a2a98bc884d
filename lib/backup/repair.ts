/**
 * Repair from any source that may hold the data: the chunks the damage
 * record names (found bad by a deep verify) and the referenced chunks that
 * are missing are looked for in a file or block device, chunk by chunk at
 * chunk-aligned offsets; each block whose SHA-256 is a wanted chunk's name is
 * stored again. Content addressing makes it safe to read anything (an old
 * image, the live device, another copy): only bytes with the right digest
 * are written. What no source held is listed with the backups it breaks.
 *
 * @module
 */

import { BoundedPool, concurrencyOf } from "./_pool.ts";
import type { DamageRecord } from "./damage.ts";
import { isAbortOf, RepoError } from "./errors.ts";
import { chunkCountOf, chunkLengthOf, isAllZero, toHex } from "./format.ts";
import { referencedDigests } from "./index_file.ts";
import { list } from "./list.ts";
import type { Repository } from "./repository.ts";
import type { BackupSource } from "./source.ts";
import type { Progress } from "./types.ts";

/** Options of {@linkcode repair}. */
export interface RepairOptions {
  /** Find what could be repaired, write nothing (and take no lock). @default false */
  dryRun?: boolean;
  /** Chunks hashed at once. @default max(2, navigator.hardwareConcurrency) */
  concurrency?: number;
  /** Wait this long for the repository lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Called as the sources are read (bytes of all sources). */
  onProgress?: (progress: Progress) => void;
  /** Abort (checked before each read); chunks already rewritten stay; throws `signal.reason`. */
  signal?: AbortSignal;
}

/** A chunk no source held. */
export interface LostChunk {
  /** Hex SHA-256. */
  digest: string;
  /** Why it was wanted. */
  problem: "missing" | "corrupt";
  /** The backups that use it: none of them can be restored whole. */
  backups: string[];
}

/** The result of {@linkcode repair}. */
export interface RepairResult {
  /** Chunks that were wanted (damaged or missing, and referenced). */
  wanted: number;
  /** Chunks rewritten from a source (on a dry run: found). */
  repaired: string[];
  /** Chunks still bad, with the backups they break. */
  lost: LostChunk[];
  /** Backups that still cannot be restored whole. */
  lostBackups: string[];
  /** Bytes read from the sources. */
  bytesRead: number;
  /** Whether this was a dry run. */
  dryRun: boolean;
}

/**
 * Rewrite what `sources` can of the damaged and missing chunks of `repo`.
 * Corrupt chunks are known from the damage record, so run `verify --deep`
 * first; missing ones are found here. Repaired entries of the damage record
 * are marked healed (a deep verify confirms and drops them).
 *
 * @example Repair from an old image, then confirm
 * ```ts ignore
 * import { FileSource, repair, Repository, verify } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * using source = await FileSource.open("/var/tmp/vdb-old.img");
 * const r = await repair(repo, [source]);
 * console.log(r.repaired.length, "repaired;", r.lost.length, "lost:", r.lostBackups.join(" "));
 * console.log((await verify(repo, { deep: true })).ok);
 * ```
 */
export async function repair(
  repo: Repository,
  sources: readonly BackupSource[],
  options: RepairOptions = {},
): Promise<RepairResult> {
  const dryRun = options.dryRun ?? false;
  options.signal?.throwIfAborted();
  const lock = dryRun ? null : await repo.lock("repair", { waitMs: options.lockWaitMs ?? 0 });
  try {
    return await repairLocked(repo, sources, dryRun, options);
  } catch (e) {
    throw e instanceof RepoError || isAbortOf(e, options.signal)
      ? e
      : new RepoError("IO", `repair of ${repo.path} failed: ${(e as Error).message}`, { cause: e });
  } finally {
    await lock?.release().catch(() => {});
  }
}

async function repairLocked(
  repo: Repository,
  sources: readonly BackupSource[],
  dryRun: boolean,
  options: RepairOptions,
): Promise<RepairResult> {
  const { chunkSize } = repo.config;
  // What is wanted: damaged chunks still referenced, and missing ones.
  const damage: DamageRecord = await repo.readDamage().catch(() => new Map());
  const users = new Map<string, string[]>();
  for (const m of (await list(repo)).backups) {
    let index;
    try {
      index = await repo.readIndex(m);
    } catch {
      continue; // verify names it; its chunks are unknown
    }
    for (const hex of referencedDigests(index).keys()) {
      const u = users.get(hex);
      if (u) u.push(m.id);
      else users.set(hex, [m.id]);
    }
  }
  const wanted = new Map<string, LostChunk["problem"]>();
  for (const [hex, entry] of damage) {
    if (entry.healed === null && users.has(hex)) wanted.set(hex, "corrupt");
  }
  for (const hex of users.keys()) {
    if (!wanted.has(hex) && !(await repo.hasChunk(hex))) wanted.set(hex, "missing");
  }

  const repaired = new Set<string>();
  let bytesRead = 0;
  const bytesTotal = sources.reduce((s, src) => s + Number(src.capacity), 0);
  for (const source of sources) {
    if (repaired.size === wanted.size) break;
    const count = chunkCountOf(source.capacity, chunkSize);
    const pool = new BoundedPool(concurrencyOf(options.concurrency));
    try {
      for (let i = 0; i < count && repaired.size < wanted.size; i++) {
        options.signal?.throwIfAborted();
        const buf = new Uint8Array(chunkLengthOf(i, source.capacity, chunkSize));
        const n = await source.read(BigInt(i) * BigInt(chunkSize), buf);
        bytesRead += n;
        options.onProgress?.({ bytesDone: bytesRead, bytesTotal });
        if (n !== buf.length || isAllZero(buf)) continue;
        const ok = await pool.run(async () => {
          const digest = await repo.chunkDigest(buf);
          const hex = toHex(digest);
          if (!wanted.has(hex) || repaired.has(hex)) return;
          repaired.add(hex);
          if (!dryRun) await repo.putChunk(hex, await repo.encodeChunk(buf, digest));
        });
        if (!ok) break;
      }
    } catch (e) {
      pool.fail(e);
    }
    await pool.drain();
    pool.throwIfFailed();
  }

  if (!dryRun && repaired.size > 0) {
    await repo.syncChunkDirs();
    const time = new Date().toISOString();
    let changed = false;
    for (const hex of repaired) {
      const entry = damage.get(hex);
      if (entry) {
        entry.healed = { time, by: "repair" };
        changed = true;
      }
    }
    if (changed) await repo.writeDamage(damage);
  }
  const lost: LostChunk[] = [];
  for (const [hex, problem] of wanted) {
    if (!repaired.has(hex)) lost.push({ digest: hex, problem, backups: users.get(hex)! });
  }
  lost.sort((a, b) => a.digest.localeCompare(b.digest));
  return {
    wanted: wanted.size,
    repaired: [...repaired].sort(),
    lost,
    lostBackups: [...new Set(lost.flatMap((c) => c.backups))].sort(),
    bytesRead,
    dryRun,
  };
}

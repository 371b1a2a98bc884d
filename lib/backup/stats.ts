/**
 * What a repository holds: logical bytes (the sum of every backup's
 * capacity), the distinct chunk data they share, and what that data takes
 * on disk after compression, in total and per device.
 *
 * @module
 */

import { runBounded } from "./_pool.ts";
import { chunkLengthOf } from "./format.ts";
import { referencedDigests } from "./index_file.ts";
import { list } from "./list.ts";
import { deviceKey } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { chunkName } from "./storage/backend.ts";
import { matchesDevice } from "./select.ts";
import type { BadBackup } from "./types.ts";

/** Sizes of a set of backups. */
export interface UsageStats {
  /** Backups counted. */
  backups: number;
  /** Sum of their capacities: what restoring every one would write. */
  logicalBytes: bigint;
  /** Distinct non-zero chunks they reference. */
  chunks: number;
  /** Uncompressed bytes of those chunks (after dedup, before compression). */
  dataBytes: number;
  /** Bytes of those chunk files on disk (after dedup and compression). */
  storedBytes: number;
  /** Chunks referenced whose file is missing (not counted in `storedBytes`). */
  missingChunks: number;
}

/** {@linkcode UsageStats} of one device's backups. */
export interface DeviceStats extends UsageStats {
  /** The key its backups chain by. */
  device: string;
  /** The name of its newest backup (the path, for display). */
  name: string;
}

/** The result of {@linkcode stats}. */
export interface RepoStats extends UsageStats {
  /** Per device; a chunk two devices share counts in both. */
  devices: DeviceStats[];
  /** Chunk files no backup references (gc removes them). */
  unreferencedChunks: number;
  /** Their bytes on disk. */
  unreferencedBytes: number;
  /** Backups that could not be read (not counted). */
  problems: BadBackup[];
}

/** Options of {@linkcode stats}. */
export interface StatsOptions {
  /** Only this device's backups (key, stable id or name). @default all */
  device?: string;
}

/**
 * Count what the repository holds. Reads every manifest and index and stats
 * every referenced chunk file; takes no lock.
 *
 * @example
 * ```ts ignore
 * import { Repository, stats } from "./mod.ts";
 * const s = await stats(await Repository.open("/backup/repo"));
 * console.log(s.logicalBytes, s.dataBytes, s.storedBytes);
 * ```
 */
export async function stats(repo: Repository, options: StatsOptions = {}): Promise<RepoStats> {
  const { backups, problems } = await list(repo);
  const length = new Map<string, number>(); // chunk -> uncompressed length
  const perDevice = new Map<
    string,
    { name: string; ids: number; logical: bigint; chunks: Set<string> }
  >();
  for (const m of backups) {
    if (options.device !== undefined && !matchesDevice(m, options.device)) continue;
    let index;
    try {
      index = await repo.readIndex(m);
    } catch (e) {
      problems.push({ id: m.id, path: repo.indexPath(m.id), error: (e as Error).message });
      continue;
    }
    const key = deviceKey(m.device);
    const d = perDevice.get(key) ?? { name: m.device.name, ids: 0, logical: 0n, chunks: new Set() };
    perDevice.set(key, d);
    d.name = m.device.name;
    d.ids++;
    d.logical += m.device.capacity;
    for (const [hex, i] of referencedDigests(index)) {
      d.chunks.add(hex);
      if (!length.has(hex)) length.set(hex, chunkLengthOf(i, index.capacity, index.chunkSize));
    }
  }
  const size = new Map<string, number>(); // chunk -> file size, when present
  // One listing of the store (with sizes on S3), then a stat where it gave none.
  const listed = new Map<string, number | undefined>();
  for await (const o of repo.list("chunks/")) {
    const n = o.name.slice(o.name.lastIndexOf("/") + 1);
    if (/^[0-9a-f]{64}$/.test(n)) listed.set(n, o.size);
  }
  const sizeOf = async (hex: string) =>
    listed.get(hex) ?? (await repo.backend.stat(chunkName(hex)))?.size ?? 0;
  await runBounded(length.keys(), 16, async (hex) => {
    if (listed.has(hex)) size.set(hex, await sizeOf(hex));
  });
  const usage = (chunks: Iterable<string>, ids: number, logical: bigint): UsageStats => {
    const u = {
      backups: ids,
      logicalBytes: logical,
      chunks: 0,
      dataBytes: 0,
      storedBytes: 0,
      missingChunks: 0,
    };
    for (const hex of chunks) {
      u.chunks++;
      u.dataBytes += length.get(hex)!;
      const s = size.get(hex);
      if (s === undefined) u.missingChunks++;
      else u.storedBytes += s;
    }
    return u;
  };
  const devices: DeviceStats[] = [...perDevice].map(([device, d]) => ({
    device,
    name: d.name,
    ...usage(d.chunks, d.ids, d.logical),
  })).sort((a, b) => a.device.localeCompare(b.device));
  const total = usage(
    length.keys(),
    devices.reduce((s, d) => s + d.backups, 0),
    devices.reduce((s, d) => s + d.logicalBytes, 0n),
  );
  let unreferencedChunks = 0;
  let unreferencedBytes = 0;
  if (options.device === undefined) {
    for (const hex of listed.keys()) {
      if (length.has(hex)) continue;
      unreferencedChunks++;
      unreferencedBytes += await sizeOf(hex);
    }
  }
  return { ...total, devices, unreferencedChunks, unreferencedBytes, problems };
}

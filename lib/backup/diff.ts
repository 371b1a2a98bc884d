/**
 * What changed between two backups: the chunks whose digests differ, as
 * byte extents, and the data the newer one added to the repository.
 *
 * @module
 */

import { RepoError } from "./errors.ts";
import { bytesEqual, chunkLengthOf } from "./format.ts";
import { type BackupIndex, digestAt, referencedDigests } from "./index_file.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import type { ChangedExtent } from "./source.ts";

/** The result of {@linkcode diffBackups}. */
export interface BackupDiff {
  /** The older side. */
  a: Pick<Manifest, "id" | "device" | "startTime">;
  /** The newer side. */
  b: Pick<Manifest, "id" | "device" | "startTime">;
  /** True if both are backups of the same device. */
  sameDevice: boolean;
  /** Chunk size of both. */
  chunkSize: number;
  /** Chunks whose content differs (a chunk past one side's end counts as changed). */
  chunksChanged: number;
  /** Bytes of those chunks. */
  bytesChanged: number;
  /** The changed byte ranges, coalesced, in order. */
  extents: ChangedExtent[];
  /** Distinct non-zero chunks `b` references that `a` does not. */
  chunksOnlyInB: number;
  /** Their uncompressed bytes. */
  bytesOnlyInB: number;
}

/**
 * Compare backups `a` and `b` (full ids) chunk by chunk through their
 * indexes; reads no chunk data.
 *
 * @example
 * ```ts ignore
 * import { diffBackups, Repository, resolveBackupId } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * const d = await diffBackups(repo, await resolveBackupId(repo, "0a1b2c3d"), await resolveBackupId(repo, "latest"));
 * console.log(d.chunksChanged, d.bytesChanged);
 * ```
 */
export async function diffBackups(repo: Repository, a: string, b: string): Promise<BackupDiff> {
  const ma = await repo.readManifest(a);
  const mb = await repo.readManifest(b);
  if (ma.chunkSize !== mb.chunkSize) {
    throw new RepoError("INVALID", `Backups ${a} and ${b} have different chunk sizes`);
  }
  const ia: BackupIndex = await repo.readIndex(ma);
  const ib: BackupIndex = await repo.readIndex(mb);
  const { chunkSize } = ia;
  const capacity = ia.capacity > ib.capacity ? ia.capacity : ib.capacity;
  const count = Math.max(ia.chunkCount, ib.chunkCount);
  const extents: ChangedExtent[] = [];
  let chunksChanged = 0;
  let bytesChanged = 0;
  for (let i = 0; i < count; i++) {
    const da = i < ia.chunkCount ? digestAt(ia, i) : null;
    const db = i < ib.chunkCount ? digestAt(ib, i) : null;
    if (da && db && bytesEqual(da, db)) continue;
    const len = chunkLengthOf(i, capacity, chunkSize);
    chunksChanged++;
    bytesChanged += len;
    const offset = BigInt(i) * BigInt(chunkSize);
    const last = extents.at(-1);
    if (last && last.offset + last.length === offset) last.length += BigInt(len);
    else extents.push({ offset, length: BigInt(len) });
  }
  const inA = referencedDigests(ia);
  let chunksOnlyInB = 0;
  let bytesOnlyInB = 0;
  for (const [hex, i] of referencedDigests(ib)) {
    if (inA.has(hex)) continue;
    chunksOnlyInB++;
    bytesOnlyInB += chunkLengthOf(i, ib.capacity, chunkSize);
  }
  const side = (m: Manifest) => ({ id: m.id, device: m.device, startTime: m.startTime });
  return {
    a: side(ma),
    b: side(mb),
    sameDevice: (ma.device.id ?? ma.device.name) === (mb.device.id ?? mb.device.name),
    chunkSize,
    chunksChanged,
    bytesChanged,
    extents,
    chunksOnlyInB,
    bytesOnlyInB,
  };
}

/**
 * Copying backups between repositories (a local one to S3, S3 to another
 * bucket, plain to encrypted...): only the chunks the target lacks are
 * transferred, and when the two repositories name chunks differently
 * (different keys, or one encrypted and one not) every chunk is read,
 * checked, renamed under the target's key and sealed again, and the index
 * rewritten with the new names. The copy keeps the backup's id, device,
 * CBT cursor and times, so a restore from either repository gives the same
 * bytes.
 *
 * @module
 */

import { runBounded } from "./_pool.ts";
import {
  bytesEqual,
  chunkLengthOf,
  DIGEST_SIZE,
  fromHex,
  isDigestHex,
  sha256,
  toHex,
  ZERO_DIGEST,
} from "./format.ts";
import { RepoError } from "./errors.ts";
import { digestAt, encodeIndex } from "./index_file.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import type { Progress } from "./types.ts";

/** Options of {@linkcode copy}. */
export interface CopyOptions {
  /** Wait this long for the target's lock, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Called as chunks are copied (bytes of distinct chunks checked so far). */
  onProgress?: (progress: Progress) => void;
}

/** What {@linkcode copy} did. */
export interface CopyResult {
  /** Backups copied. */
  copied: string[];
  /** Backups the target had already. */
  skipped: string[];
  /** Chunks transferred. */
  chunksCopied: number;
  /** Referenced chunks the target had already. */
  chunksPresent: number;
  /** Bytes written to the target (stored size). */
  bytesStored: number;
  /** Chunks were read, renamed and sealed again (the repositories' keys differ). */
  reencrypted: boolean;
}

/**
 * Copy backups `ids` (oldest first) from `from` to `to`. Both must have the
 * same chunk size. Holds the target's lock; reads the source without one.
 *
 * @example Ship the newest local backup off-host
 * ```ts ignore
 * import { copy, Repository } from "@blksnap/blksnap/backup";
 * const local = await Repository.open("/backup/repo");
 * const remote = await Repository.open("s3://backups/db1");
 * const ids = await local.listBackupIds();
 * console.log(await copy(local, remote, ids.slice(-1)));
 * ```
 */
export async function copy(
  from: Repository,
  to: Repository,
  ids: string[],
  options: CopyOptions = {},
): Promise<CopyResult> {
  if (from.config.chunkSize !== to.config.chunkSize) {
    throw new RepoError(
      "INVALID",
      `Chunk sizes differ (${from.config.chunkSize} in ${from.path}, ${to.config.chunkSize} in ` +
        `${to.path}): a copy needs the same chunk size`,
    );
  }
  // Same naming: both plain (SHA-256 names), or the same keys (a repository and itself).
  const sameNames = (!from.keys && !to.keys) ||
    (from.keys !== null && to.keys !== null && bytesEqual(from.keys.idKey, to.keys.idKey));
  const result: CopyResult = {
    copied: [],
    skipped: [],
    chunksCopied: 0,
    chunksPresent: 0,
    bytesStored: 0,
    reencrypted: !sameNames,
  };
  const lock = await to.lock("copy", { waitMs: options.lockWaitMs ?? 0 });
  try {
    const existing = new Set(await to.listBackupIds());
    const present = new Set<string>();
    for await (const o of to.list("chunks/")) {
      const n = o.name.slice(o.name.lastIndexOf("/") + 1);
      if (isDigestHex(n)) present.add(n);
    }
    const renamed = new Map<string, string>(); // source name -> target name (different keys)
    for (const id of [...ids].sort()) {
      if (existing.has(id)) {
        result.skipped.push(id);
        continue;
      }
      const m = await from.readManifest(id);
      const index = await from.readIndex(m);
      const digests = new Uint8Array(index.digests.length);
      // Distinct chunks with a position each (for their length).
      const todo = new Map<string, number>();
      for (let i = 0; i < index.chunkCount; i++) {
        const d = digestAt(index, i);
        if (bytesEqual(d, ZERO_DIGEST)) continue;
        const hex = toHex(d);
        if (!todo.has(hex)) todo.set(hex, i);
      }
      let bytesDone = 0;
      let bytesTotal = 0;
      for (const i of todo.values()) bytesTotal += chunkLengthOf(i, m.device.capacity, m.chunkSize);
      await runBounded(todo, to.backend.parallelism, async ([hex, i]) => {
        const length = chunkLengthOf(i, m.device.capacity, m.chunkSize);
        const known = sameNames ? hex : renamed.get(hex);
        if (known !== undefined && present.has(known)) {
          result.chunksPresent++;
        } else {
          // Read and check every byte (a bad chunk stops the copy, naming it), then store it
          // in the target's own form.
          const data = await from.readChunk(hex, m.chunkSize, length);
          const target = sameNames ? fromHex(hex) : await to.chunkDigest(data);
          const targetHex = toHex(target);
          renamed.set(hex, targetHex);
          if (present.has(targetHex)) {
            result.chunksPresent++;
          } else {
            const file = await to.encodeChunk(data, target);
            await to.putChunk(targetHex, file);
            present.add(targetHex);
            result.chunksCopied++;
            result.bytesStored += file.length;
          }
        }
        bytesDone += length;
        options.onProgress?.({ bytesDone, bytesTotal });
      });
      await to.syncChunkDirs();
      for (let i = 0; i < index.chunkCount; i++) {
        const d = digestAt(index, i);
        if (bytesEqual(d, ZERO_DIGEST)) continue;
        const hex = toHex(d);
        digests.set(sameNames ? d : fromHex(renamed.get(hex)!), i * DIGEST_SIZE);
      }
      // Chunks, then index, then manifest: as a backup writes them.
      const indexBytes = encodeIndex(m.chunkSize, m.device.capacity, digests);
      await to.writeIndex(id, indexBytes);
      const copied: Manifest = {
        ...m,
        indexSha256: toHex(sha256(indexBytes)),
        verification: { state: "none", time: null, badChunks: 0 },
      };
      await to.writeManifest(copied);
      result.copied.push(id);
    }
    return result;
  } finally {
    await lock.release().catch(() => {});
  }
}

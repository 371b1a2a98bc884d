/**
 * The verify flow: fast (manifests, index checksums, every referenced chunk
 * exists) or deep (every referenced chunk decompressed and re-hashed). A deep
 * verify records its result in each manifest.
 *
 * @module
 */

import { runBounded } from "./_pool.ts";
import { ChunkReader } from "./chunk_reader.ts";
import { CHUNK_HEADER_SIZE, maxChunkFileSize } from "./chunk.ts";
import { RepoError } from "./errors.ts";
import { chunkLengthOf, isBackupId, isDigestHex, TEMP_PREFIX } from "./format.ts";
import { type BackupIndex, referencedDigests } from "./index_file.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { chunkName } from "./storage/backend.ts";
import { maxSealedChunkSize } from "./crypto/sealed.ts";
import type { BadBackup, Progress } from "./types.ts";

/** Options of {@linkcode verify}. */
export interface VerifyOptions {
  /** Decompress and re-hash every referenced chunk. @default false */
  deep?: boolean;
  /**
   * Read every referenced chunk and check what needs no decompression: its
   * frame and payload CRC-32 (its tag in an encrypted repository). Finds
   * media damage at the speed of reading; a deep verify also finds a chunk
   * that was wrong when written. Ignored with `deep`. @default false
   */
  scrub?: boolean;
  /** After a deep verify, record the result in each manifest (takes the lock). @default deep */
  mark?: boolean;
  /** Chunks checked at once in a deep verify or a scrub. @default 2 × worker threads + 2 */
  concurrency?: number;
  /**
   * Worker threads that check chunks in a deep verify; 0 checks on the
   * calling thread. @default 0
   */
  workers?: number;
  /** Wait this long for the repository lock when marking, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Called after each chunk with the (uncompressed) bytes of distinct chunks checked so far. */
  onProgress?: (progress: Progress) => void;
}

/** A missing or corrupt chunk and the backups that use it. */
export interface BadChunk {
  /** Hex SHA-256 (the chunk's name). */
  digest: string;
  /** Path of the chunk file. */
  path: string;
  /** What is wrong. */
  problem: "missing" | "corrupt";
  /** Details. */
  detail: string;
  /** Ids of every backup whose index references it. */
  backups: string[];
}

/** The result of {@linkcode verify}. */
export interface VerifyReport {
  /** No errors (warnings allowed). */
  ok: boolean;
  /** Whether chunk contents were checked. */
  deep: boolean;
  /** Whether chunk files were read and their CRC-32 (or tag) checked, without a deep verify. */
  scrub: boolean;
  /** Backups whose manifest and index were read. */
  backupsChecked: number;
  /** Distinct chunks checked. */
  chunksChecked: number;
  /** Errors: missing or corrupt chunks. */
  badChunks: BadChunk[];
  /** Errors: unreadable manifests or indexes. */
  badBackups: BadBackup[];
  /** Warning: stored chunks no backup references (removed by `gc`). */
  unreferencedChunks: string[];
  /** Warning: index files without a manifest (removed by `gc`). */
  orphanIndexes: string[];
  /** Warning: leftover temporary files (removed by `gc`); never data. */
  tempFiles: string[];
  /** Warning: files in `chunks/` whose name is not a digest. */
  strayFiles: string[];
  /** Backups whose manifest got a new verification state. */
  marked: { id: string; state: "ok" | "failed" }[];
}

/**
 * Verify the whole repository. Fast: every manifest and index parses, index
 * checksums match, every referenced chunk file exists and has a plausible
 * size. Deep: also decompresses every referenced chunk and checks its
 * SHA-256. Scrub: reads every referenced chunk and checks its CRC-32. The
 * fast check does not detect bit rot inside a chunk file. Deep and scrub
 * checks run on worker threads when there is enough to read.
 *
 * @example Deep-verify and print bad chunks with the backups that use them
 * ```ts ignore
 * import { Repository, verify } from "./mod.ts";
 * const report = await verify(await Repository.open("/backup/repo"), { deep: true });
 * for (const c of report.badChunks) console.log(c.digest, c.problem, c.backups.join(" "));
 * ```
 */
export async function verify(repo: Repository, options: VerifyOptions = {}): Promise<VerifyReport> {
  const deep = options.deep ?? false;
  const mark = (options.mark ?? deep) && deep;
  const lock = mark ? await repo.lock("verify", { waitMs: options.lockWaitMs ?? 0 }) : null;
  try {
    return await verifyLocked(repo, deep, mark, options);
  } finally {
    await lock?.release().catch(() => {});
  }
}

async function verifyLocked(
  repo: Repository,
  deep: boolean,
  mark: boolean,
  options: VerifyOptions,
): Promise<VerifyReport> {
  const scrub = !deep && (options.scrub ?? false);
  const report: VerifyReport = {
    ok: true,
    deep,
    scrub,
    backupsChecked: 0,
    chunksChecked: 0,
    badChunks: [],
    badBackups: [],
    unreferencedChunks: [],
    orphanIndexes: [],
    tempFiles: [],
    strayFiles: [],
    marked: [],
  };
  const { chunkSize } = repo.config;
  const users = new Map<string, { ids: string[]; length: number }>();
  const manifests = new Map<string, Manifest>();
  const names: string[] = [];
  for await (const o of repo.list("backups/")) names.push(o.name.slice("backups/".length));
  const ids = new Set<string>();
  for (const n of names) {
    if (n.startsWith(TEMP_PREFIX)) report.tempFiles.push(repo.backend.display(`backups/${n}`));
    else if (n.endsWith(".json") && isBackupId(n.slice(0, -5))) ids.add(n.slice(0, -5));
  }
  for (const n of names) {
    if (n.endsWith(".index") && !ids.has(n.slice(0, -6))) {
      report.orphanIndexes.push(repo.backend.display(`backups/${n}`));
    }
  }
  for (const id of [...ids].sort()) {
    let m: Manifest;
    let index: BackupIndex;
    try {
      m = await repo.readManifest(id);
    } catch (e) {
      report.badBackups.push({ id, path: repo.manifestPath(id), error: (e as Error).message });
      continue;
    }
    try {
      index = await repo.readIndex(m, { fresh: true });
    } catch (e) {
      manifests.set(id, m);
      report.badBackups.push({ id, path: repo.indexPath(id), error: (e as Error).message });
      continue;
    }
    manifests.set(id, m);
    report.backupsChecked++;
    for (const [hex, i] of referencedDigests(index)) {
      let u = users.get(hex);
      if (!u) {
        u = { ids: [], length: chunkLengthOf(i, index.capacity, index.chunkSize) };
        users.set(hex, u);
      }
      u.ids.push(id);
    }
  }

  // The chunk store as listed: on S3 one listing gives every size (no HEAD per chunk);
  // a directory listing gives names, and each referenced chunk is then stat'ed.
  const stored = new Map<string, number | undefined>();
  for await (const o of repo.list("chunks/")) {
    const slash = o.name.indexOf("/", "chunks/".length);
    const fan = slash < 0 ? "" : o.name.slice("chunks/".length, slash);
    const n = o.name.slice(o.name.lastIndexOf("/") + 1);
    if (n.startsWith(TEMP_PREFIX) || fan.startsWith(TEMP_PREFIX)) {
      report.tempFiles.push(repo.backend.display(o.name));
    } else if (!isDigestHex(n) || n.slice(0, 2) !== fan) {
      report.strayFiles.push(repo.backend.display(o.name));
    } else stored.set(n, o.size);
  }

  // Chunks: existence (fast) or content (deep).
  const bound = Math.max(maxChunkFileSize(chunkSize), maxSealedChunkSize(chunkSize));
  let bytesDone = 0;
  let bytesTotal = 0;
  for (const u of users.values()) bytesTotal += u.length;
  const checkOne = async (hex: string, u: { ids: string[]; length: number }): Promise<void> => {
    const path = repo.chunkPath(hex);
    const size = stored.has(hex)
      ? stored.get(hex) ?? (await repo.backend.stat(chunkName(hex)))?.size ?? null
      : null;
    report.chunksChecked++;
    if (size === null) {
      report.badChunks.push({
        digest: hex,
        path,
        problem: "missing",
        detail: "no such file",
        backups: u.ids,
      });
    } else if (size <= CHUNK_HEADER_SIZE || size > bound) {
      report.badChunks.push({
        digest: hex,
        path,
        problem: "corrupt",
        detail: `implausible size ${size}`,
        backups: u.ids,
      });
    } else if (reader) {
      try {
        await reader.check(deep ? "deep" : "scrub", hex, chunkSize, u.length);
      } catch (e) {
        if (!(e instanceof RepoError)) throw e;
        report.badChunks.push({
          digest: hex,
          path,
          problem: e.code === "BAD_CHUNK" && /missing/.test(e.message) ? "missing" : "corrupt",
          detail: e.message,
          backups: u.ids,
        });
      }
    }
    bytesDone += u.length;
    options.onProgress?.({ bytesDone, bytesTotal });
  };
  // Deep and scrub read and check chunks (on threads when asked for).
  // A fast verify only stats files: 16 at once keeps a slow disk busy.
  using reader = deep || scrub ? ChunkReader.start(repo, { workers: options.workers }) : null;
  const concurrency = options.concurrency ?? reader?.concurrency ?? 16;
  await runBounded(users, concurrency, ([hex, u]) => checkOne(hex, u));
  report.badChunks.sort((a, b) => a.digest.localeCompare(b.digest));
  for (const hex of stored.keys()) if (!users.has(hex)) report.unreferencedChunks.push(hex);

  report.ok = report.badChunks.length === 0 && report.badBackups.length === 0;

  if (mark) {
    const badPer = new Map<string, number>();
    for (const c of report.badChunks) {
      for (const id of c.backups) badPer.set(id, (badPer.get(id) ?? 0) + 1);
    }
    for (const b of report.badBackups) {
      if (manifests.has(b.id)) badPer.set(b.id, Math.max(1, badPer.get(b.id) ?? 0));
    }
    const time = new Date().toISOString();
    for (const [id, m] of manifests) {
      const bad = badPer.get(id) ?? 0;
      const state = bad > 0 ? "failed" : "ok";
      await repo.writeManifest({ ...m, verification: { state, time, badChunks: bad } });
      report.marked.push({ id, state });
    }
  }
  return report;
}

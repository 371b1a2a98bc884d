/**
 * The verify flow: fast (manifests, index checksums, every referenced chunk
 * exists, chunks a deep verify found bad and nothing has rewritten since) or
 * deep (every referenced chunk decompressed and re-hashed). A deep verify
 * records its result in each manifest and in the damage record (damage.ts),
 * and says which damaged chunks were healed since, and so which backups are
 * restorable again. Both warn about repository files others can read.
 *
 * @module
 */

import { join } from "node:path";
import { runBounded } from "./_pool.ts";
import { ChunkReader } from "./chunk_reader.ts";
import { defaultVerifyThreads } from "./chunk_workers.ts";
import { CHUNK_HEADER_SIZE, maxChunkFileSize } from "./chunk.ts";
import { maxSealedChunkSize } from "./crypto/sealed.ts";
import type { DamageRecord } from "./damage.ts";
import { RepoError } from "./errors.ts";
import { chunkLengthOf, isBackupId, isDigestHex, TEMP_PREFIX } from "./format.ts";
import { PRIVATE_DIR_MODE, PRIVATE_FILE_MODE, type RepoStat } from "./fs.ts";
import { type BackupIndex, referencedDigests } from "./index_file.ts";
import type { LockInfo } from "./lock.ts";
import type { Manifest } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { chunkName } from "./storage/backend.ts";
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
  /**
   * After a deep verify, record the result in each manifest and in the
   * damage record (takes the lock). @default deep
   */
  mark?: boolean;
  /** Chunks checked at once in a deep verify or a scrub. @default 2 × worker threads + 2 */
  concurrency?: number;
  /**
   * Worker threads that check chunks in a deep verify or a scrub; 0
   * checks on the calling thread. The threads are shared with the process's
   * other flows and kept between them; they never keep the process alive.
   * @default one per core for a deep verify when there are at least two
   * (measured faster on 2 cores: docs/benchmarks.md, "Worker threads vs the
   * calling thread"), 0 for a scrub
   *
   * @example A deep verify on the calling thread only
   * ```ts ignore
   * await verify(repo, { deep: true, workers: 0 });
   * ```
   */
  workers?: number;
  /** Wait this long for the repository lock when marking, in milliseconds. @default 0 */
  lockWaitMs?: number;
  /** Called after each chunk with the (uncompressed) bytes of distinct chunks checked so far. */
  onProgress?: (progress: Progress) => void;
  /** Abort (checked before each chunk); throws `signal.reason` as is, marks nothing. */
  signal?: AbortSignal;
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
  /** True when this verify did not read it: an earlier deep verify found it bad. */
  known: boolean;
}

/** A chunk the damage record names that was rewritten from good data. */
export interface HealedChunk {
  /** Hex SHA-256. */
  digest: string;
  /** The backup id (or `repair`) that rewrote it, if recorded. */
  by: string | null;
  /** When it was rewritten, if recorded. */
  time: string | null;
  /** The backups that use it. */
  backups: string[];
  /** True when this (deep) verify read it back intact; false: rewritten, not yet re-read. */
  confirmed: boolean;
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
  /** Error: the damage record is unreadable (a marking deep verify writes it afresh). */
  damageRecordError: string | null;
  /** Damaged chunks rewritten since they were found. */
  healedChunks: HealedChunk[];
  /**
   * Backups that a deep verify had marked failed and that are whole again
   * (every chunk present and intact; on a fast verify: present, and every
   * damaged one rewritten).
   */
  healedBackups: string[];
  /** Warning: stored chunks no backup references (removed by `gc`). */
  unreferencedChunks: string[];
  /** Warning: index files without a manifest (removed by `gc`). */
  orphanIndexes: string[];
  /** Warning: leftover temporary files (removed by `gc`); never data. */
  tempFiles: string[];
  /** Warning: files in `chunks/` whose name is not a digest. */
  strayFiles: string[];
  /**
   * Warning: files or directories of a local repository that group or others
   * may access (should be 0600/0700).
   */
  widePermissions: string[];
  /** The writer holding the lock while a fast verify ran (its new chunks look unreferenced). */
  writer: LockInfo | null;
  /** Backups whose manifest got a new verification state. */
  marked: { id: string; state: "ok" | "failed" }[];
}

/**
 * Verify the whole repository. Fast: every manifest and index parses, index
 * checksums match, every referenced chunk file exists and has a plausible
 * size, and no referenced chunk is in the damage record unhealed. Deep: also
 * decompresses every referenced chunk and checks its SHA-256. Scrub: reads
 * every referenced chunk and checks its CRC-32 (tag). The fast check does
 * not detect new bit rot inside a chunk file. Deep and scrub checks run on
 * worker threads when there is enough to read.
 *
 * @example Deep-verify and print bad chunks with the backups that use them
 * ```ts ignore
 * import { Repository, verify } from "./mod.ts";
 * const report = await verify(await Repository.open("/backup/repo"), { deep: true });
 * for (const c of report.badChunks) console.log(c.digest, c.problem, c.backups.join(" "));
 * console.log("restorable again:", report.healedBackups.join(" "));
 * ```
 */
export async function verify(repo: Repository, options: VerifyOptions = {}): Promise<VerifyReport> {
  const deep = options.deep ?? false;
  const mark = (options.mark ?? deep) && deep;
  options.signal?.throwIfAborted();
  const lock = mark ? await repo.lock("verify", { waitMs: options.lockWaitMs ?? 0 }) : null;
  try {
    return await verifyLocked(repo, deep, mark, options);
  } finally {
    await lock?.release().catch(() => {});
  }
}

/** Who uses a chunk, and its length. */
interface ChunkUse {
  ids: string[];
  length: number;
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
    damageRecordError: null,
    healedChunks: [],
    healedBackups: [],
    unreferencedChunks: [],
    orphanIndexes: [],
    tempFiles: [],
    strayFiles: [],
    widePermissions: [],
    writer: null,
    marked: [],
  };
  const { chunkSize } = repo.config;
  // File modes exist in a local repository only (an S3 bucket has its policy).
  const local = repo.backend.kind === "local";
  const checkMode = (path: string, st: RepoStat | null) => {
    if (st?.mode == null) return;
    const allowed = st.isDirectory ? PRIVATE_DIR_MODE : PRIVATE_FILE_MODE;
    if ((st.mode & ~allowed & 0o777) !== 0) report.widePermissions.push(path);
  };
  const checkModeOf = async (path: string) => {
    if (local) checkMode(path, await repo.fs.stat(path));
  };
  for (const p of [repo.path, repo.chunksDir, repo.backupsDir, repo.runsDir]) await checkModeOf(p);
  await checkModeOf(join(repo.path, "config.json"));

  let damage: DamageRecord = new Map();
  try {
    damage = await repo.readDamage();
  } catch (e) {
    report.damageRecordError = (e as Error).message;
  }

  // Backups: manifests and indexes.
  const users = new Map<string, ChunkUse>();
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
  const indexBad = new Set<string>();
  for (const id of [...ids].sort()) {
    options.signal?.throwIfAborted();
    await checkModeOf(repo.manifestPath(id));
    await checkModeOf(repo.indexPath(id));
    let m: Manifest;
    let index: BackupIndex;
    try {
      m = await repo.readManifest(id);
    } catch (e) {
      report.badBackups.push({ id, path: repo.manifestPath(id), error: (e as Error).message });
      continue;
    }
    manifests.set(id, m);
    try {
      index = await repo.readIndex(m, { fresh: true });
    } catch (e) {
      indexBad.add(id);
      report.badBackups.push({ id, path: repo.indexPath(id), error: (e as Error).message });
      continue;
    }
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
  if (local) {
    const fans = new Set([...stored.keys()].map((hex) => hex.slice(0, 2)));
    for (const fan of fans) await checkModeOf(join(repo.chunksDir, fan));
  }
  /** A stored chunk's size, or null when it is missing (a local one's mode is checked too). */
  const sizeOf = async (hex: string): Promise<number | null> => {
    if (!stored.has(hex)) return null;
    if (local) {
      const st = await repo.fs.stat(repo.chunkPath(hex));
      checkMode(repo.chunkPath(hex), st);
      return st?.isFile ? st.size : null;
    }
    return stored.get(hex) ?? (await repo.backend.stat(chunkName(hex)))?.size ?? null;
  };

  // Chunks: existence (fast) or content (deep); a fast verify also trusts
  // the damage record about chunks nothing has rewritten since.
  const bound = Math.max(maxChunkFileSize(chunkSize), maxSealedChunkSize(chunkSize));
  let bytesDone = 0;
  let bytesTotal = 0;
  for (const u of users.values()) bytesTotal += u.length;
  const bad = (hex: string, u: ChunkUse, problem: BadChunk["problem"], detail: string) =>
    report.badChunks.push({
      digest: hex,
      path: repo.chunkPath(hex),
      problem,
      detail,
      backups: u.ids,
      known: false,
    });
  const checkOne = async (hex: string, u: ChunkUse): Promise<void> => {
    options.signal?.throwIfAborted();
    const path = repo.chunkPath(hex);
    const size = await sizeOf(hex);
    report.chunksChecked++;
    const known = damage.get(hex);
    if (size === null) {
      bad(hex, u, "missing", "no such file");
    } else if (size <= CHUNK_HEADER_SIZE || size > bound) {
      bad(hex, u, "corrupt", `implausible size ${size}`);
    } else {
      let found = false;
      if (reader) {
        try {
          await reader.check(deep ? "deep" : "scrub", hex, chunkSize, u.length);
        } catch (e) {
          if (!(e instanceof RepoError)) throw e;
          found = true;
          bad(
            hex,
            u,
            e.code === "BAD_CHUNK" && /missing/.test(e.message) ? "missing" : "corrupt",
            e.message,
          );
        }
      }
      // A scrub cannot see what a deep verify found (a chunk wrong when written).
      if (!found && !deep && known && known.healed === null) {
        report.badChunks.push({
          digest: hex,
          path,
          problem: known.problem,
          detail: `found ${known.problem} by the deep verify of ${known.found}: ${known.detail}`,
          backups: u.ids,
          known: true,
        });
      }
    }
    bytesDone += u.length;
    options.onProgress?.({ bytesDone, bytesTotal });
  };
  // Deep and scrub read and check chunks (on threads when asked for).
  // A fast verify only stats files: 16 at once keeps a slow disk busy.
  const workers = options.workers ?? (deep ? defaultVerifyThreads() : 0);
  using reader = deep || scrub ? ChunkReader.start(repo, { workers }) : null;
  const concurrency = options.concurrency ?? reader?.concurrency ?? 16;
  await runBounded(users, concurrency, ([hex, u]) => checkOne(hex, u));
  report.badChunks.sort((a, b) => a.digest.localeCompare(b.digest));

  // Healing: damaged chunks that are now good (deep), or rewritten (fast).
  const badNow = new Set(report.badChunks.map((c) => c.digest));
  for (const [hex, entry] of damage) {
    const u = users.get(hex);
    if (!u || badNow.has(hex) || (!deep && entry.healed === null)) continue;
    report.healedChunks.push({
      digest: hex,
      by: entry.healed?.by ?? null,
      time: entry.healed?.time ?? null,
      backups: u.ids,
      confirmed: deep,
    });
  }
  const badPer = new Map<string, number>();
  for (const c of report.badChunks) {
    for (const id of c.backups) badPer.set(id, (badPer.get(id) ?? 0) + 1);
  }
  for (const b of report.badBackups) {
    if (manifests.has(b.id)) badPer.set(b.id, Math.max(1, badPer.get(b.id) ?? 0));
  }
  const healedUsers = new Set(report.healedChunks.flatMap((c) => c.backups));
  for (const [id, m] of manifests) {
    if (m.verification.state !== "failed" || badPer.has(id) || indexBad.has(id)) continue;
    // Deep: whole again. Fast: whole unless the rot was never recorded.
    if (deep || healedUsers.has(id)) report.healedBackups.push(id);
  }

  for (const hex of stored.keys()) if (!users.has(hex)) report.unreferencedChunks.push(hex);
  if (!mark) {
    const holder = await repo.lockHolder();
    if (holder.info && !holder.stale) report.writer = holder.info;
  }

  report.ok = report.badChunks.length === 0 && report.badBackups.length === 0 &&
    report.damageRecordError === null;

  if (mark) {
    options.signal?.throwIfAborted();
    const time = new Date().toISOString();
    // The damage record becomes exactly what this verify found bad, keeping
    // when each chunk was first found.
    const next: DamageRecord = new Map();
    for (const c of report.badChunks) {
      next.set(c.digest, {
        problem: c.problem,
        detail: c.detail,
        found: damage.get(c.digest)?.found ?? time,
        backups: c.backups,
        healed: null,
      });
    }
    await repo.writeDamage(next);
    for (const [id, m] of manifests) {
      const n = badPer.get(id) ?? 0;
      const state = n > 0 ? "failed" : "ok";
      await repo.writeManifest({ ...m, verification: { state, time, badChunks: n } });
      report.marked.push({ id, state });
    }
  }
  return report;
}

/**
 * Block-level backups of Linux block devices into a repository in a local
 * directory or on S3 (`s3://bucket/prefix`): content-addressed,
 * zstd-compressed, fixed-size chunks (named by SHA-256, or by a keyed HMAC
 * and sealed with ChaCha20-Poly1305 in an encrypted repository), one index
 * and one manifest per backup, incrementals driven by the CBT cursor. Each
 * flow is a function: {@linkcode backup}, {@linkcode backupDevices},
 * {@linkcode restore}, {@linkcode verify}, {@linkcode list},
 * {@linkcode prune}, {@linkcode forget}, {@linkcode gc}, {@linkcode repair},
 * {@linkcode stats}, {@linkcode diffBackups}, {@linkcode unlock},
 * {@linkcode copy}. Local repositories are private (directories 0700, files
 * 0600); chunks a deep verify finds bad are remembered and rewritten by the
 * next backup that reads the same data. The format is in
 * docs/repository-format.md.
 *
 * @example Full backup of an image file, then restore and verify
 * ```ts ignore
 * import { backup, FileSource, Repository, restore, verify } from "@blksnap/blksnap/backup";
 * const repo = await Repository.init("/backup/repo", { chunkSize: 1 << 20 });
 * using source = await FileSource.open("/var/tmp/disk.img");
 * const { manifest, decision } = await backup(source, repo);
 * console.log(manifest.id, decision.reason);
 * await restore(repo, manifest.id, "/var/tmp/restored.img");
 * console.log((await verify(repo, { deep: true })).ok);
 * ```
 *
 * @module
 */

export { backup, type BackupOptions, type BackupResult, chunksOfExtents } from "./backup.ts";
export {
  backupDevices,
  type BackupDevicesOptions,
  type BackupDevicesResult,
  type DeviceBackupOutcome,
  type TakenDevice,
} from "./backup_devices.ts";
export { parseConfig, type RepoConfig } from "./config.ts";
export { copy, type CopyOptions, type CopyResult } from "./copy.ts";
export { DEFAULT_SCRYPT, type KeySlot, type ScryptParams } from "./crypto/keys.ts";
export type { DamagedChunk, DamageRecord } from "./damage.ts";
export type { Backend, PutOptions, StoredObject } from "./storage/backend.ts";
export { LocalBackend } from "./storage/local.ts";
export { S3Backend, type S3BackendOptions } from "./storage/s3.ts";
export type { S3Settings } from "./s3/config.ts";
export {
  decideBackupMode,
  type Decision,
  type DecisionInput,
  type DecisionParent,
} from "./decision.ts";
export { deviceIdentity, type IdentityOptions } from "./device_identity.ts";
export { type BackupDiff, diffBackups } from "./diff.ts";
export { CorruptError, RepoError, RepoErrorCode, type RepoErrorOptions } from "./errors.ts";
export { DEFAULT_CHUNK_SIZE, DIGEST_SIZE, FORMAT_VERSION, ZERO_DIGEST } from "./format.ts";
export { forget, type ForgetOptions, type ForgetResult } from "./forget.ts";
export {
  DenoFs,
  PRIVATE_DIR_MODE,
  PRIVATE_FILE_MODE,
  type RepoFs,
  type RepoStat,
  type RepoWriteOptions,
} from "./fs.ts";
export { gc, type GcOptions, type GcResult } from "./gc.ts";
export { type BackupIndex, decodeIndex, encodeIndex } from "./index_file.ts";
export { list, type ListOptions, type ListResult } from "./list.ts";
export {
  type Lockable,
  type LockHolder,
  type LockInfo,
  type LockOptions,
  RepoLock,
  unlock,
  type Unlockable,
  type UnlockOptions,
  type UnlockResult,
} from "./lock.ts";
export {
  type BackupStats,
  type CbtCursor,
  type DeviceIdentity,
  deviceKey,
  type FailedRun,
  type Manifest,
  parseManifest,
  type VerificationState,
} from "./manifest.ts";
export {
  applyRetention,
  parseRetentionDuration,
  prune,
  type PruneOptions,
  type PruneResult,
  type RetentionDuration,
  type RetentionPolicy,
} from "./prune.ts";
export { type LostChunk, repair, type RepairOptions, type RepairResult } from "./repair.ts";
export { cacheDir, type InitOptions, type OpenOptions, Repository } from "./repository.ts";
export {
  devNumbers,
  mountedDevices,
  restore,
  type RestoreOptions,
  type RestoreResult,
} from "./restore.ts";
export { matchesDevice, resolveBackupId, type ResolveOptions, shortId } from "./select.ts";
export { SnapshotSource } from "./snapshot_source.ts";
export {
  type BackupSource,
  type CbtMapLike,
  type ChangedExtent,
  FileSource,
  type FileSourceOptions,
} from "./source.ts";
export {
  type DeviceStats,
  type RepoStats,
  stats,
  type StatsOptions,
  type UsageStats,
} from "./stats.ts";
export type { BadBackup, Progress } from "./types.ts";
export {
  type BadChunk,
  type HealedChunk,
  verify,
  type VerifyOptions,
  type VerifyReport,
} from "./verify.ts";

/**
 * Serve a backup point as a block device over NBD (the Network Block Device
 * protocol): fixed newstyle handshake, `OPT_GO`/`OPT_INFO`/`OPT_LIST`,
 * structured replies and `base:allocation` block status (so `nbdcopy` and
 * `qemu-img` skip the holes), over a Unix socket or a loopback TCP port, to
 * the kernel's `nbd` driver (`nbd-client`), QEMU and libnbd alike. Reads come
 * from the repository through the backup's index, chunk by checked chunk,
 * with an LRU cache and read-ahead; an {@linkcode OverlaySource} takes writes
 * into a local copy-on-write file for instant recovery. Operator flows:
 * docs/operations.md ("Mount, serve and boot a backup point").
 *
 * @example Serve a backup point read-only on a Unix socket
 * ```ts ignore
 * import { Repository } from "@blksnap/blksnap/backup";
 * import { BackupPointSource, NbdServer } from "@blksnap/blksnap/nbd";
 * const repo = await Repository.open("/backup/repo");
 * const id = "20261124T031600123Z-0a1b2c3d";
 * const source = await BackupPointSource.open(repo, id);
 * const server = await NbdServer.listen({ socket: "/run/blksnap/b.sock" }, {
 *   exports: [{ name: id, description: "backup point", source }],
 * });
 * // nbdinfo 'nbd+unix:///?socket=/run/blksnap/b.sock'
 * await server.close();
 * ```
 *
 * @module
 */

export {
  BackupPointSource,
  type BackupPointSourceOptions,
  type BackupPointStats,
} from "./backup_source.ts";
export {
  type BlockSource,
  BlockSourceError,
  type Extent,
  mergeExtents,
  type ReadPiece,
} from "./block_source.ts";
export { ChunkCache, type ChunkCacheStats } from "./chunk_cache.ts";
export { MAX_PAYLOAD, type NbdExport } from "./handshake.ts";
export { type OverlayOptions, OverlaySource } from "./overlay.ts";
export { NbdErrno } from "./protocol.ts";
export { type NbdListenAddress, NbdServer, type NbdServerOptions } from "./server.ts";
export { nbdUri, serveBackupPoint, type ServedBackupPoint, type ServeOptions } from "./serve.ts";
export { type FsType, probeFilesystem, readOnlyMountOptions } from "./fs_probe.ts";
export {
  DEFAULT_RUN_DIR,
  listMountedBackupPoints,
  mountBackupPoint,
  MountError,
  type MountOptions,
  type MountRecord,
  unmountBackupPoint,
  type UnmountOptions,
} from "./mount.ts";
export {
  relativeInside,
  type RestoredPath,
  restoreFiles,
  type RestoreFilesOptions,
  type RestoreFilesResult,
} from "./file_restore.ts";

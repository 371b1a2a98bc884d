/**
 * blksnap for Deno: change block tracking and copy-on-write snapshots of live
 * Linux block devices, for block-level incremental backups. `Tracker` attaches
 * the kernel module's tracker to a device and reads its CBT map; `CbtMap`
 * turns the map into the byte extents changed since a previous backup (pure
 * TypeScript, usable on saved maps); `Snapshot` takes consistent images of one
 * or more devices; `Session` does attach, create, add, take and event watching
 * in one call. Native calls go through libblksnap (`kmod/ctl/`), loaded on
 * first use from `BLKSNAP_LIB`, the repository build, or `libblksnap.so.1`;
 * run with `--allow-ffi` (and root for device operations).
 *
 * @example Back up what changed since the last run
 * ```ts ignore
 * import { Session } from "@blksnap/blksnap";
 * const saved = { generationId: "…", changesNumber: 3 }; // from the last backup
 * await using session = await Session.start({
 *   devices: ["/dev/vdb"],
 *   diffStorage: "/var/tmp",
 *   limit: 4n << 30n,
 * });
 * const map = session.cbtMap("/dev/vdb");
 * // Same generation and a number not gone back (the map restarts at 1 in a
 * // new generation after 255): the blocks above the saved number changed.
 * const since = map.generationId === saved.generationId &&
 *     map.changesNumber >= saved.changesNumber ? saved.changesNumber : -1;
 * const extents = since < 0 ? [{ offset: 0n, length: map.info.deviceCapacity }]
 *   : map.changedExtents(since);
 * console.log(session.imagePath("/dev/vdb"), extents.length, map.changesNumber);
 * ```
 *
 * @module
 */
export { type CbtInfo, CbtMap, type Extent } from "./lib/cbt_map.ts";
export { BlksnapError, type BlksnapErrorOptions, BlksnapLibraryError } from "./lib/errors.ts";
export { type FileSectors, fileSectors } from "./lib/fiemap.ts";
export { formatBytes, parseSize } from "./lib/size.ts";
export { type ModuleVersion, moduleVersion } from "./lib/module_version.ts";
export { Session, type SessionOptions } from "./lib/session.ts";
export { Snapshot, type SnapshotCreateOptions, type SnapshotEvent } from "./lib/snapshot.ts";
export {
  type DeviceSnapshotInfo,
  type SectorRange,
  Tracker,
  type Transport,
} from "./lib/tracker.ts";

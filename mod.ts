/**
 * blksnap for Deno: change block tracking and copy-on-write snapshots of live
 * Linux block devices, for block-level incremental backups.
 *
 * @example Print the module's version
 * ```ts ignore
 * import { moduleVersion } from "./mod.ts";
 * console.log(moduleVersion());
 * ```
 *
 * @module
 */
export {};

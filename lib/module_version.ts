/**
 * The kernel module's version.
 *
 * @module
 */

import { BlksnapError } from "./errors.ts";
import { outPointer, readOutPointer } from "./ffi/codec.ts";
import { layout } from "./ffi/layout.ts";
import { native } from "./ffi/library.ts";
import { unwrap } from "./ffi/unwrap.ts";
import { Errno } from "./ffi/errno.ts";

/**
 * The version the kernel module reports (for logs, not feature tests).
 *
 * @example
 * ```ts
 * import type { ModuleVersion } from "@blksnap/blksnap";
 * const v: ModuleVersion = { major: 2, minor: 0, revision: 0, build: 0 };
 * console.log(`${v.major}.${v.minor}.${v.revision}.${v.build}`);
 * ```
 */
export interface ModuleVersion {
  /** Major. */
  major: number;
  /** Minor. */
  minor: number;
  /** Revision. */
  revision: number;
  /** Build. */
  build: number;
}

/**
 * Asks the loaded blksnap module for its version. Throws a
 * {@linkcode BlksnapError} with `ENOENT` if the module is not loaded, or a
 * `BlksnapLibraryError` if libblksnap cannot be loaded.
 *
 * @example
 * ```ts ignore
 * import { moduleVersion } from "@blksnap/blksnap";
 * const { major, minor } = moduleVersion();
 * console.log(`blksnap ${major}.${minor}`);
 * ```
 */
export function moduleVersion(): ModuleVersion {
  const op = "moduleVersion";
  const lib = native();
  const out = outPointer();
  unwrap(lib.blksnap_ctl_open(null, out), op, "is the blksnap module loaded?");
  const pointer = readOutPointer(out);
  if (pointer === null) throw new BlksnapError(Errno.ENOMEM, op);
  try {
    const buf = new Uint8Array(layout.blksnap_version.size);
    unwrap(lib.blksnap_ctl_version(pointer, buf), op);
    const view = new DataView(buf.buffer);
    const l = layout.blksnap_version;
    return {
      major: view.getUint16(l.major, true),
      minor: view.getUint16(l.minor, true),
      revision: view.getUint16(l.revision, true),
      build: view.getUint16(l.build, true),
    };
  } finally {
    lib.blksnap_ctl_close(pointer);
  }
}

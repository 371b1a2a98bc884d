/**
 * The errors the binding throws.
 *
 * @module
 */

import { errnoDescription, errnoName } from "./ffi/errno.ts";

/** Options of {@linkcode BlksnapError}. */
export interface BlksnapErrorOptions {
  /** Text added after the errno's description, e.g. a hint. */
  detail?: string;
  /** The underlying error, if any. */
  cause?: unknown;
}

/**
 * A failed blksnap operation: the kernel module or libblksnap answered
 * `-errno`. Every non-zero return code of the native library becomes one of
 * these; so does an operation on a closed handle (`EBADF`).
 *
 * `errno` is the positive number, `code` its symbolic name (`"EBUSY"`), `op`
 * the operation that failed (`"Tracker.attach"`).
 *
 * @example Tell an expected condition from a failure
 * ```ts ignore
 * import { BlksnapError, Tracker } from "@blksnap/blksnap";
 * using tracker = Tracker.open("/dev/sdb");
 * try {
 *   tracker.detach();
 * } catch (err) {
 *   if (err instanceof BlksnapError && err.code === "ENOENT") {
 *     console.log("was not attached");
 *   } else {
 *     throw err;
 *   }
 * }
 * ```
 */
export class BlksnapError extends Error {
  /** Always `"BlksnapError"`. */
  override name = "BlksnapError";
  /** The positive errno, e.g. 16. */
  readonly errno: number;
  /** The errno's symbolic name, e.g. `"EBUSY"`. */
  readonly code: string;
  /** The operation that failed, e.g. `"Tracker.attach"`. */
  readonly op: string;

  /**
   * Makes the error of `op` failing with `errno`.
   *
   * @example
   * ```ts
   * import { BlksnapError } from "@blksnap/blksnap";
   * const err = new BlksnapError(16, "Tracker.attach");
   * console.assert(err.code === "EBUSY");
   * ```
   */
  constructor(errno: number, op: string, options: BlksnapErrorOptions = {}) {
    const code = errnoName(errno);
    const detail = options.detail ? `: ${options.detail}` : "";
    super(`${op} failed: ${errnoDescription(errno)} (${code})${detail}`, {
      cause: options.cause,
    });
    this.errno = errno;
    this.code = code;
    this.op = op;
  }
}

/**
 * libblksnap could not be loaded: not found, the wrong major version, or no
 * `--allow-ffi`. `tried` lists every path tried and why it failed.
 *
 * @example Explain how to get the library
 * ```ts ignore
 * import { BlksnapLibraryError, moduleVersion } from "@blksnap/blksnap";
 * try {
 *   moduleVersion();
 * } catch (err) {
 *   if (err instanceof BlksnapLibraryError) console.error(err.tried.join("\n"));
 *   throw err;
 * }
 * ```
 */
export class BlksnapLibraryError extends Error {
  /** Always `"BlksnapLibraryError"`. */
  override name = "BlksnapLibraryError";
  /** Each path tried, with the reason it failed: `"<path>: <reason>"`. */
  readonly tried: readonly string[];

  /**
   * Makes the error; `tried` as in {@linkcode BlksnapLibraryError.tried}.
   *
   * @example
   * ```ts
   * import { BlksnapLibraryError } from "@blksnap/blksnap";
   * const err = new BlksnapLibraryError("libblksnap not found", ["/x: missing"]);
   * console.assert(err.tried.length === 1);
   * ```
   */
  constructor(message: string, tried: readonly string[], options?: ErrorOptions) {
    super(message, options);
    this.tried = tried;
  }
}

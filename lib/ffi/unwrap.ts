/**
 * The one place where native return codes become errors.
 *
 * @module
 */

import { BlksnapError } from "../errors.ts";
import { Errno } from "./errno.ts";

/**
 * Returns `rc` if it is not negative; otherwise throws the
 * {@linkcode BlksnapError} of `-rc` for `op`, with an optional `detail`.
 */
export function unwrap(rc: number, op: string, detail?: string): number {
  if (rc >= 0) return rc;
  throw new BlksnapError(-rc, op, { detail });
}

/** The {@linkcode BlksnapError} of an operation on a closed handle. */
export function closedError(op: string, what: string): BlksnapError {
  return new BlksnapError(Errno.EBADF, op, { detail: `the ${what} is closed` });
}

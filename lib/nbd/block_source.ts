/**
 * What an NBD export serves: a {@linkcode BlockSource} is a range of bytes
 * that can be read (in pieces: data, known zeros, or a failed range), asked
 * for its allocation, and, when writable, written, flushed and trimmed. The
 * protocol layer (handshake, transmission) knows nothing else about where the
 * bytes come from.
 *
 * @module
 */

import { NbdErrno } from "./protocol.ts";

/** A part of a read: bytes, a run of zeros, or a range that failed. */
export type ReadPiece =
  | { kind: "data"; offset: number; data: Uint8Array }
  | { kind: "zero"; offset: number; length: number }
  | { kind: "error"; offset: number; length: number; errno: NbdErrno; message: string };

/** A run of bytes with one allocation state. */
export interface Extent {
  /** Bytes covered. */
  length: number;
  /** Not stored anywhere (a hole). */
  hole: boolean;
  /** Known to read as zeros. */
  zero: boolean;
}

/**
 * A byte range served over NBD. Offsets and lengths are within `size` (the
 * transmission layer checks them before calling). Throw
 * {@linkcode BlockSourceError} to answer a request with a given NBD error;
 * any other exception becomes `EIO`.
 */
export interface BlockSource {
  /** Size in bytes (at most `Number.MAX_SAFE_INTEGER`). */
  readonly size: number;
  /** Whether {@linkcode BlockSource.write} and friends may be called. */
  readonly writable: boolean;
  /**
   * Read `[offset, offset + length)`: pieces in order, covering the range
   * exactly. A failed range is an `error` piece; the other pieces stay valid.
   */
  read(offset: number, length: number): Promise<ReadPiece[]>;
  /** Allocation of `[offset, offset + length)`, in order; may stop early but covers at least one byte. */
  extents(offset: number, length: number): Promise<Extent[]>;
  /** Write `data` at `offset` (writable sources only). */
  write?(offset: number, data: Uint8Array, fua: boolean): Promise<void>;
  /** Make every completed write durable (writable sources only). */
  flush?(): Promise<void>;
  /** Hint that `[offset, offset + length)` is no longer needed (writable sources only). */
  trim?(offset: number, length: number): Promise<void>;
  /** Release what the source holds (files, caches). */
  close?(): Promise<void>;
}

/** An error with the NBD error value a request should be answered with. */
export class BlockSourceError extends Error {
  /** Always `"BlockSourceError"`. */
  override name = "BlockSourceError";
  /** The NBD error value (`EIO`, `ENOSPC`...). */
  readonly errno: NbdErrno;

  /** Build the error. */
  constructor(errno: NbdErrno, message: string, options?: ErrorOptions) {
    super(message, options);
    this.errno = errno;
  }
}

/** The NBD error value for an exception thrown by a source. */
export function nbdErrnoOf(e: unknown): NbdErrno {
  if (e instanceof BlockSourceError) return e.errno;
  const code = (e as { code?: unknown })?.code;
  if (code === "ENOSPC" || code === "EDQUOT" || code === "EFBIG") return NbdErrno.ENOSPC;
  if (e instanceof Deno.errors.PermissionDenied) return NbdErrno.EPERM;
  return NbdErrno.EIO;
}

/**
 * Join adjacent extents with the same state.
 *
 * @example
 * ```ts
 * import { mergeExtents } from "./block_source.ts";
 * const e = mergeExtents([
 *   { length: 4, hole: true, zero: true },
 *   { length: 4, hole: true, zero: true },
 *   { length: 8, hole: false, zero: false },
 * ]);
 * console.log(e.length); // 2
 * ```
 */
export function mergeExtents(extents: Extent[]): Extent[] {
  const out: Extent[] = [];
  for (const e of extents) {
    if (e.length <= 0) continue;
    const last = out[out.length - 1];
    if (last && last.hole === e.hole && last.zero === e.zero) last.length += e.length;
    else out.push({ ...e });
  }
  return out;
}

/** Bytes of `[offset, offset + length)` as one array, zeros filled in; throws on an error piece. */
export function piecesToBytes(pieces: ReadPiece[], offset: number, length: number): Uint8Array {
  if (pieces.length === 1 && pieces[0].kind === "data" && pieces[0].data.length === length) {
    return pieces[0].data;
  }
  const out = new Uint8Array(length);
  for (const p of pieces) {
    if (p.kind === "error") throw new BlockSourceError(p.errno, p.message);
    if (p.kind === "data") out.set(p.data, p.offset - offset);
  }
  return out;
}

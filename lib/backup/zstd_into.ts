/**
 * zstd into buffers the caller owns, with one compression context (per
 * level) and one decompression context per thread, kept from chunk to chunk.
 *
 * Why: `zlib.zstdCompressSync` and `zstdDecompressSync` allocate a new
 * context and new output buffers on every call. Fresh memory is paid in
 * page faults, and on the hosts we measured a page fault costs 10-15 us:
 * the ~1000 faults of a fresh 4 MiB output cost 10-15 ms, ten times the
 * decompression itself (1.2 ms). Worker threads got fresh memory far more
 * often than the calling thread (their buffers are freed on another
 * thread), which made the chunk codec cost 2-4x the CPU there
 * (docs/benchmarks.md, "Worker threads vs the calling thread").
 *
 * The contexts are Node's zlib stream handles, driven directly
 * (`_handle.writeSync` into our buffer, then `reset`): the one documented
 * zlib API that writes into a given buffer. When a Deno release lacks them,
 * each function falls back to the allocating form, same results.
 *
 * @example Compress and decompress into reused buffers
 * ```ts
 * import { zstdCompressInto, zstdDecompressInto } from "./zstd_into.ts";
 * const data = new Uint8Array(65536).fill(9);
 * const frame = new Uint8Array(data.length);
 * const n = zstdCompressInto(data, 1, frame);
 * const back = new Uint8Array(data.length);
 * console.log(zstdDecompressInto(frame.subarray(0, n), back)); // 65536
 * ```
 *
 * @module
 */

import zlib from "node:zlib";

/** The part of a Node zlib stream handle used here. */
interface Handle {
  writeSync(
    flush: number,
    input: Uint8Array,
    inOffset: number,
    inLength: number,
    out: Uint8Array,
    outOffset: number,
    outLength: number,
  ): void;
  reset(): void;
}

/** A zlib stream whose handle reports `[outputLeft, inputLeft]` in `_writeState` after each write. */
interface Stream {
  _handle?: Handle;
  _writeState?: Uint32Array;
}

// The stream classes, which Deno's zlib typings do not declare yet.
const streams = zlib as unknown as {
  ZstdCompress: new (options: { params: Record<number, number> }) => Stream;
  ZstdDecompress: new () => Stream;
};

/** ZSTD_e_end: finish the frame in this call. */
const END = 2;

// This thread's contexts (every Worker has its own module instance).
const compressors = new Map<number, Stream>();
let decompressor: Stream | null = null;

function usable(s: Stream): s is { _handle: Handle; _writeState: Uint32Array } {
  return typeof s._handle?.writeSync === "function" && typeof s._handle.reset === "function" &&
    s._writeState instanceof Uint32Array;
}

/**
 * Compresses `data` at `level` into the start of `out` as one zstd frame;
 * returns its length, or -1 when the frame would not be shorter than
 * `out` (a caller that stores raw data when zstd does not shrink it passes
 * `out` of `data.length` bytes and stores raw on -1).
 */
export function zstdCompressInto(data: Uint8Array, level: number, out: Uint8Array): number {
  let s = compressors.get(level);
  if (s === undefined) {
    s = new streams.ZstdCompress({ params: { [zlib.constants.ZSTD_c_compressionLevel]: level } });
    compressors.set(level, s);
  }
  if (!usable(s)) {
    const z = zlib.zstdCompressSync(data, {
      params: { [zlib.constants.ZSTD_c_compressionLevel]: level },
    });
    if (z.length >= out.length) return -1;
    out.set(z);
    return z.length;
  }
  try {
    s._handle.writeSync(END, data, 0, data.length, out, 0, out.length);
    const [outputLeft, inputLeft] = s._writeState;
    // A full `out` may hold an unfinished frame: not shorter either way.
    if (inputLeft !== 0 || outputLeft === 0) return -1;
    return out.length - outputLeft;
  } catch (e) {
    compressors.delete(level); // its state is unknown: the next call starts afresh
    throw e;
  } finally {
    s._handle.reset();
  }
}

/**
 * Decompresses zstd frame(s) `data` into the start of `out`; returns the
 * bytes written. Throws a plain `Error` when the data is not valid zstd or
 * decompresses to more than `out.length` bytes. A truncated frame is not
 * detected here: the caller checks the length and the content's name.
 */
export function zstdDecompressInto(data: Uint8Array, out: Uint8Array): number {
  decompressor ??= new streams.ZstdDecompress();
  const s = decompressor;
  if (!usable(s)) {
    let z: Uint8Array;
    try {
      z = zlib.zstdDecompressSync(data, { maxOutputLength: Math.max(1, out.length) });
    } catch (e) {
      if (e instanceof RangeError) throw new Error(`decompresses to more than ${out.length} bytes`);
      throw e;
    }
    out.set(z);
    return z.length;
  }
  try {
    // One write may stop early (after a block's output, or when `out` is
    // full before the frame's last bytes are read): write until every byte
    // is read or nothing moves. Once `out` is full, one more byte of output
    // (into `oneByte`) means the data is longer than `out`.
    let read = 0;
    let written = 0;
    for (;;) {
      const full = written === out.length;
      const target = full ? oneByte : out;
      const at = full ? 0 : written;
      s._handle.writeSync(END, data, read, data.length - read, target, at, target.length - at);
      const [outputLeft, inputLeft] = s._writeState;
      if (full && outputLeft === 0) {
        throw new Error(`decompresses to more than ${out.length} bytes`);
      }
      const nowRead = data.length - inputLeft;
      const nowWritten = full ? written : out.length - outputLeft;
      const moved = nowRead !== read || nowWritten !== written;
      read = nowRead;
      written = nowWritten;
      if (read === data.length && !(written === out.length && !full)) break;
      if (!moved) break;
    }
    if (read !== data.length) throw new Error(`has ${data.length - read} bytes zstd did not read`);
    return written;
  } catch (e) {
    decompressor = null; // its state is unknown: the next call starts afresh
    throw e;
  } finally {
    s._handle.reset();
  }
}

const oneByte = new Uint8Array(1);

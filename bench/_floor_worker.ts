/**
 * A thread of {@linkcode CpuFloor} (bench/_floor.ts): takes jobs from a
 * shared queue until it is empty and does only the CPU work a job needs, on
 * bytes already in memory. No I/O, no copies, no framing, and no fresh
 * memory: zstd writes into one output buffer per thread, reused (as the
 * flows do, lib/backup/zstd_into.ts), since a fresh 4 MiB output costs more
 * in page faults than its decompression (docs/benchmarks.md).
 *
 * Messages in: `{ data, jobs, next }` (SharedArrayBuffers: the bytes, the
 * jobs as Float64 quintuples, an Int32 cursor). Out: `"done"`.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { zstdCompressInto, zstdDecompressInto } from "../lib/backup/zstd_into.ts";
import { JOB_FIELDS, JobKind } from "./_floor.ts";

/** This thread's zstd output, grown to the largest job and reused. */
let out = new Uint8Array(0);
function outOf(length: number): Uint8Array {
  if (out.length < length) out = new Uint8Array(length);
  return out.subarray(0, length);
}

self.onmessage = (e: MessageEvent) => {
  const { data, jobs, next, level } = e.data as {
    data: SharedArrayBuffer;
    jobs: SharedArrayBuffer;
    next: SharedArrayBuffer;
    level: number;
  };
  const bytes = new Uint8Array(data);
  const list = new Float64Array(jobs);
  const cursor = new Int32Array(next);
  const count = list.length / JOB_FIELDS;
  const zeros = new Uint8Array(64 * 1024);
  for (;;) {
    const j = Atomics.add(cursor, 0, 1);
    if (j >= count) break;
    const [kind, offset, length, outLength] = list.subarray(j * JOB_FIELDS, (j + 1) * JOB_FIELDS);
    const piece = bytes.subarray(offset, offset + length);
    switch (kind) {
      case JobKind.Zero: // the zero test of an all-zero chunk
        for (let at = 0; at < piece.length; at += zeros.length) {
          const part = piece.subarray(at, at + zeros.length);
          if (Buffer.compare(part, zeros.subarray(0, part.length)) !== 0) {
            throw new Error("not zero");
          }
        }
        break;
      case JobKind.Hash: // a chunk the store already has: its name only
        createHash("sha256").update(piece).digest();
        break;
      case JobKind.Store: // a new chunk: its name and its compressed form
        createHash("sha256").update(piece).digest();
        zstdCompressInto(piece, level, outOf(piece.length));
        break;
      case JobKind.Decode: { // a stored chunk's zstd payload: CRC, decompress, hash
        zlib.crc32(piece);
        const to = outOf(outLength);
        if (zstdDecompressInto(piece, to) !== outLength) throw new Error("short frame");
        createHash("sha256").update(to).digest();
        break;
      }
      case JobKind.DecodeRaw: // a stored raw payload: CRC, hash
        zlib.crc32(piece);
        createHash("sha256").update(piece).digest();
        break;
    }
  }
  self.postMessage("done");
};

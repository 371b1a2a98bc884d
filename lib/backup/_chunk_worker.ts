/**
 * One thread of {@linkcode ChunkWorkers} (chunk_workers.ts): runs the chunk
 * codec's steps (chunk_codec.ts) on the buffers it is sent and sends the
 * results back, moving buffers (transfer) rather than copying them. No I/O.
 *
 * Messages in: `{ op: "init", spec }`, then `{ id, op, ... }` with `op` one of
 * `name`, `encode`, `decode`, `check`, `scrub`. Out: `{ id, ... }` or
 * `{ id, error }` (the message of the error the step threw). `encode` and
 * `decode` write into an `out` buffer the caller sends and gets back.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { type ChunkCodec, chunkCodec } from "./chunk_codec.ts";
import { isAllZero } from "./format.ts";
import { transferList } from "./_transfer.ts";

let codec: ChunkCodec | null = null;

self.onmessage = (e: MessageEvent) => {
  const m = e.data;
  if (m.op === "init") {
    codec = chunkCodec(m.spec);
    return;
  }
  try {
    if (codec === null) throw new Error("chunk worker used before init");
    switch (m.op) {
      case "name": {
        const data: Uint8Array = m.data;
        const zero = isAllZero(data);
        const name = zero ? null : codec.name(data);
        // `data` came with its whole buffer (the caller's), which goes back the same way.
        self.postMessage({ id: m.id, zero, name, data }, [data.buffer as ArrayBuffer]);
        break;
      }
      case "encode": {
        // The object goes into the caller's `out`, not a fresh buffer: a buffer
        // made here and freed on the calling thread would leave this thread's
        // allocator to fault in new pages for every chunk (docs/benchmarks.md).
        const data: Uint8Array = m.data;
        const out: Uint8Array = m.out;
        const length = codec.encodeInto(data, m.name, out);
        self.postMessage({ id: m.id, data, out, length }, [
          data.buffer as ArrayBuffer,
          out.buffer as ArrayBuffer,
        ]);
        break;
      }
      case "decode": {
        // Into the caller's `out`, for the reason of `encode`.
        const out: Uint8Array = m.out;
        const data = codec.decode(m.stored, m.hex, m.maxLength, m.exactLength, out);
        if (data.buffer !== out.buffer) out.set(data); // raw: a view of `stored`
        self.postMessage({ id: m.id, out, length: data.length, stored: m.stored }, [
          out.buffer as ArrayBuffer,
          ...transferList(m.stored),
        ]);
        break;
      }
      // `stored` goes back too, to be freed by the thread that allocated it.
      case "check":
        codec.check(m.stored, m.hex, m.maxLength, m.exactLength);
        self.postMessage({ id: m.id, stored: m.stored }, transferList(m.stored));
        break;
      case "scrub":
        codec.scrub(m.stored, m.hex, m.maxLength);
        self.postMessage({ id: m.id, stored: m.stored }, transferList(m.stored));
        break;
      default:
        throw new Error(`unknown chunk worker operation ${m.op}`);
    }
  } catch (err) {
    self.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
};

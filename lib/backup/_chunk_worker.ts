/**
 * One thread of {@linkcode ChunkWorkers} (chunk_workers.ts): runs the chunk
 * codec's steps (chunk_codec.ts) on the buffers it is sent and sends the
 * results back, moving buffers (transfer) rather than copying them. No I/O.
 *
 * Messages in: `{ op: "init", spec }`, then `{ id, op, ... }` with `op` one of
 * `name`, `encode`, `decode`, `check`, `scrub`. Out: `{ id, ... }` or
 * `{ id, error }` (the message of the error the step threw).
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
        const data: Uint8Array = m.data;
        const stored = codec.encode(data, m.name);
        const back = [data.buffer as ArrayBuffer];
        self.postMessage(
          { id: m.id, stored, data },
          stored.buffer === data.buffer ? back : [...back, ...transferList(stored)],
        );
        break;
      }
      case "decode": {
        const data = codec.decode(m.stored, m.hex, m.maxLength, m.exactLength);
        self.postMessage({ id: m.id, data }, transferList(data));
        break;
      }
      case "check":
        codec.decode(m.stored, m.hex, m.maxLength, m.exactLength);
        self.postMessage({ id: m.id });
        break;
      case "scrub":
        codec.scrub(m.stored, m.hex, m.maxLength);
        self.postMessage({ id: m.id });
        break;
      default:
        throw new Error(`unknown chunk worker operation ${m.op}`);
    }
  } catch (err) {
    self.postMessage({ id: m.id, error: err instanceof Error ? err.message : String(err) });
  }
};

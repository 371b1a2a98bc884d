/**
 * One thread of {@linkcode ChunkWorkers} (chunk_workers.ts): runs the chunk
 * codec's steps (chunk_codec.ts) on the buffers it is sent and sends the
 * results back, moving buffers (transfer) rather than copying them. No I/O.
 *
 * Messages in: `{ op: "init", specId, spec }` (a flow's codec) and
 * `{ op: "drop", specId }` (the flow ended), and `{ id, specId, op, ... }`
 * with `op` one of `name`, `encode`, `nameEncode`, `decode`, `check`, `scrub`. Out: `{ id, ... }` or
 * `{ id, error }` (the message of the error the step threw). `encode` and
 * `decode` write into an `out` buffer the caller sends and gets back.
 *
 * @module
 */

import { parentPort } from "node:worker_threads";
import { type ChunkCodec, chunkCodec } from "./chunk_codec.ts";
import { isAllZero } from "./format.ts";
import { fromWire, toWire, type Wire } from "./_transfer.ts";

/** The codecs of the flows using this thread, by spec number. */
const codecs = new Map<number, ChunkCodec>();

/** Posts `message`, the buffers of the fields in `move` moved back to the caller. */
function send(message: Record<string, unknown>, move: readonly string[]): void {
  port.postMessage(...toWire(message, move));
}

function handle(wire: unknown): void {
  // deno-lint-ignore no-explicit-any
  const m = fromWire(wire as Wire) as any;
  if (m.op === "init") {
    codecs.set(m.specId, chunkCodec(m.spec));
    return;
  }
  if (m.op === "drop") {
    codecs.delete(m.specId);
    return;
  }
  try {
    const codec = codecs.get(m.specId);
    if (codec === undefined) throw new Error("chunk worker used before init");
    switch (m.op) {
      case "name": {
        const data: Uint8Array = m.data;
        const zero = isAllZero(data);
        const name = zero ? null : codec.name(data);
        // `data` came with its whole buffer (the caller's), which goes back the same way.
        send({ id: m.id, zero, name, data }, ["data"]);
        break;
      }
      case "nameEncode": {
        // Both steps in one trip, for a chunk the caller expects to be new: a
        // trip costs two thread wake-ups, which cost more than the codec's
        // share of a chunk on a loaded host (docs/benchmarks.md).
        const data: Uint8Array = m.data;
        const out: Uint8Array = m.out;
        const zero = isAllZero(data);
        const name = zero ? null : codec.name(data);
        const length = name === null ? 0 : codec.encodeInto(data, name, out);
        send({ id: m.id, zero, name, data, out, length }, ["data", "out"]);
        break;
      }
      case "encode": {
        // The object goes into the caller's `out`, not a fresh buffer: a buffer
        // made here and freed on the calling thread would leave this thread's
        // allocator to fault in new pages for every chunk (docs/benchmarks.md).
        const data: Uint8Array = m.data;
        const out: Uint8Array = m.out;
        const length = codec.encodeInto(data, m.name, out);
        send({ id: m.id, data, out, length }, ["data", "out"]);
        break;
      }
      case "decode": {
        // Into the caller's `out`, for the reason of `encode`.
        const out: Uint8Array = m.out;
        const data = codec.decode(m.stored, m.hex, m.maxLength, m.exactLength, out);
        if (data.buffer !== out.buffer) out.set(data); // raw: a view of `stored`
        send({ id: m.id, out, length: data.length, stored: m.stored }, ["out", "stored"]);
        break;
      }
      // `stored` goes back too, to be freed by the thread that allocated it.
      case "check":
        codec.check(m.stored, m.hex, m.maxLength, m.exactLength);
        send({ id: m.id, stored: m.stored }, ["stored"]);
        break;
      case "scrub":
        codec.scrub(m.stored, m.hex, m.maxLength);
        send({ id: m.id, stored: m.stored }, ["stored"]);
        break;
      default:
        throw new Error(`unknown chunk worker operation ${m.op}`);
    }
  } catch (err) {
    send({ id: m.id, error: err instanceof Error ? err.message : String(err) }, []);
  }
}

const port = parentPort!;
/** The message handler. @internal Tests wrap it, to make a thread fail. */
export const thread: { handle: (m: unknown) => void } = { handle };
port.on("message", (m: unknown) => thread.handle(m));

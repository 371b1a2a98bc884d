/**
 * How chunk messages cross to a worker thread and back: every `Uint8Array`
 * field travels as its bare ArrayBuffer with an offset and a length, moved
 * (transferred), never copied by the message channel. Deno's
 * `node:worker_threads` clones a typed array through a slow path (4 MiB took
 * 2.6 s to copy and 6 s to "transfer", against 1.3 ms for the bare
 * ArrayBuffer, Deno 2.9.6), so no typed array goes into a message as such.
 *
 * A field named in `move` gives its whole ArrayBuffer away (the view's
 * offset and length travel with it): the sender must own that buffer whole
 * and may not touch it until it comes back. Any
 * other field is copied first (`slice`) and its copy moved, so a view into
 * a larger buffer (a slice of a pooled allocation, a digest in Node's
 * shared Buffer pool) never takes the rest of that buffer with it.
 *
 * @module
 */

/** A message with its typed-array fields as bare buffers. */
export interface Wire {
  [field: string]: unknown;
  /** The typed-array fields: buffer, byte offset, byte length. */
  views: Record<string, [ArrayBuffer, number, number]>;
}

/**
 * `message` made ready to post, and the buffers to transfer with it. Throws
 * if a field in `move` is a view of a SharedArrayBuffer.
 */
export function toWire(
  message: Record<string, unknown>,
  move: readonly string[] = [],
): [Wire, ArrayBuffer[]] {
  const wire: Wire = { views: {} };
  const transfer: ArrayBuffer[] = [];
  for (const [k, v] of Object.entries(message)) {
    if (!(v instanceof Uint8Array)) {
      wire[k] = v;
      continue;
    }
    let view = v;
    if (move.includes(k)) {
      if (!(v.buffer instanceof ArrayBuffer)) {
        throw new TypeError(`${k}: only a view of an ArrayBuffer can move to a thread`);
      }
    } else {
      view = v.slice();
    }
    const buf = view.buffer as ArrayBuffer;
    wire.views[k] = [buf, view.byteOffset, view.byteLength];
    if (!transfer.includes(buf)) transfer.push(buf);
  }
  return [wire, transfer];
}

/** The message `wire` carried, its typed-array fields restored. */
export function fromWire(wire: Wire): Record<string, unknown> {
  const message: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(wire)) if (k !== "views") message[k] = v;
  for (const [k, [buf, off, len]] of Object.entries(wire.views ?? {})) {
    message[k] = new Uint8Array(buf, off, len);
  }
  return message;
}

/** Whether `view` covers its whole ArrayBuffer: only such a view can move to a thread. */
export function ownsBuffer(view: Uint8Array): boolean {
  const buf = view.buffer;
  return buf instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buf.byteLength;
}

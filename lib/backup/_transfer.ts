/**
 * Which buffers may move to another thread with a message (transfer) rather
 * than be copied: only a view that covers its whole ArrayBuffer. A view into
 * a larger buffer (a slice of a pooled allocation, a piece of a bigger read)
 * is copied, because moving the buffer would take the rest of it away from
 * whoever else holds it.
 *
 * @module
 */

/** The transfer list for `view`: its buffer when the view covers all of it, else nothing. */
export function transferList(view: Uint8Array): ArrayBuffer[] {
  const buf = view.buffer;
  return buf instanceof ArrayBuffer && view.byteOffset === 0 && view.byteLength === buf.byteLength
    ? [buf]
    : [];
}

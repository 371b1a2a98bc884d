/**
 * Conversions between JavaScript values and the C representations the
 * library takes: C strings, UUIDs, out-pointers.
 *
 * @module
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A NUL-terminated UTF-8 copy of `value`, for a `const char *` parameter.
 * Throws `TypeError` if it is not a non-empty string or contains NUL.
 */
export function toCString(value: unknown, what: string): Uint8Array<ArrayBuffer> {
  if (typeof value !== "string") {
    throw new TypeError(`${what} must be a string, got ${typeof value}`);
  }
  if (value.length === 0) throw new TypeError(`${what} must not be empty`);
  if (value.includes("\0")) throw new TypeError(`${what} must not contain NUL`);
  const bytes = encoder.encode(value);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/** The string in `bytes` up to the first NUL. */
export function fromCString(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** The text form (`8-4-4-4-12` lowercase hex) of 16 UUID bytes, in order. */
export function formatUuid(bytes: Uint8Array): string {
  let hex = "";
  for (let i = 0; i < 16; i++) hex += (bytes[i] ?? 0).toString(16).padStart(2, "0");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${
    hex.slice(20)
  }`;
}

/** The 16 bytes of a UUID text; `TypeError` if it is not one. */
export function parseUuid(text: unknown, what: string): Uint8Array<ArrayBuffer> {
  if (typeof text !== "string") {
    throw new TypeError(`${what} must be a string, got ${typeof text}`);
  }
  if (!UUID_RE.test(text)) throw new TypeError(`${what} is not a UUID: "${text}"`);
  const hex = text.replaceAll("-", "");
  const out = new Uint8Array(16);
  for (let i = 0; i < 16; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/** A `T **` out-parameter: pass it, then read it with {@linkcode readOutPointer}. */
export function outPointer(): BigUint64Array<ArrayBuffer> {
  return new BigUint64Array(1);
}

/** The pointer a C function stored in an {@linkcode outPointer}. */
export function readOutPointer(out: BigUint64Array): Deno.PointerValue {
  return Deno.UnsafePointer.create(out[0]);
}

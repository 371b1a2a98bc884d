/**
 * The encrypted object layouts of format 2 (docs/repository-format.md):
 * a chunk (header, ChaCha20-Poly1305 ciphertext of its stored payload, tag;
 * its own key; the header and the chunk id authenticated) and a sealed
 * index or manifest (the plaintext file of format 1 sealed under a key of its
 * object name, the name authenticated, so a file moved under another name
 * does not open).
 *
 * @module
 */

import { open, randomNonce, seal, TAG_SIZE } from "./aead.ts";
import { chunkKeyOf, metaKeyOf, type RepoKeys } from "./keys.ts";

/** Chunk header size of format 2. */
export const SEALED_CHUNK_HEADER_SIZE = 32;
/** Sealed index/manifest header size. */
export const SEALED_OBJECT_HEADER_SIZE = 28;

const CHUNK_MAGIC = new TextEncoder().encode("BSNPCHK2");
const OBJECT_MAGIC = new TextEncoder().encode("BSNPSEAL");
const enc = new TextEncoder();

/** The clear fields of a format-2 chunk. */
export interface SealedChunkHeader {
  /** 0 = raw, 1 = zstd. */
  encoding: number;
  /** Uncompressed length. */
  length: number;
  /** Stored (compressed) payload length, without the tag. */
  payloadLength: number;
}

/** Largest format-2 chunk object for chunks of at most `chunkSize` bytes. */
export function maxSealedChunkSize(chunkSize: number): number {
  return SEALED_CHUNK_HEADER_SIZE + chunkSize + TAG_SIZE;
}

function magicIs(b: Uint8Array, magic: Uint8Array): boolean {
  if (b.length < magic.length) return false;
  for (let i = 0; i < magic.length; i++) if (b[i] !== magic[i]) return false;
  return true;
}

/**
 * Seal a chunk's stored payload (raw or zstd bytes of the plaintext whose
 * keyed id is `id`).
 *
 * @example Seal and open a chunk
 * ```ts
 * import { deriveKeys, newMaster, chunkId } from "./keys.ts";
 * import { openChunk, sealChunk } from "./sealed.ts";
 * const keys = deriveKeys(newMaster(), "0123456789abcdef0123456789abcdef");
 * const data = new Uint8Array(4096).fill(7);
 * const id = chunkId(keys, data);
 * const file = sealChunk(keys, id, { encoding: 0, length: 4096, payloadLength: 4096 }, data);
 * console.log(openChunk(keys, id, file, 4096).payload.length); // 4096
 * ```
 */
export function sealChunk(
  keys: RepoKeys,
  id: Uint8Array,
  header: SealedChunkHeader,
  payload: Uint8Array,
): Uint8Array {
  const out = new Uint8Array(SEALED_CHUNK_HEADER_SIZE + payload.length + TAG_SIZE);
  sealChunkInto(keys, id, header, payload, out);
  return out;
}

/**
 * {@linkcode sealChunk} into the start of `out` (at least
 * `maxSealedChunkSize` of the payload's length, not overlapping `payload`),
 * a buffer the caller reuses from chunk to chunk; returns the object's length.
 */
export function sealChunkInto(
  keys: RepoKeys,
  id: Uint8Array,
  header: SealedChunkHeader,
  payload: Uint8Array,
  out: Uint8Array,
): number {
  const head = out.subarray(0, SEALED_CHUNK_HEADER_SIZE);
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  head.set(CHUNK_MAGIC, 0);
  v.setUint32(8, header.encoding, true);
  v.setUint32(12, header.length, true);
  v.setUint32(16, payload.length, true);
  head.set(randomNonce(), 20);
  const length = SEALED_CHUNK_HEADER_SIZE + payload.length + TAG_SIZE;
  const body = out.subarray(SEALED_CHUNK_HEADER_SIZE, length);
  seal(chunkKeyOf(keys, id), head.subarray(20, 32), payload, chunkAad(head, id), body);
  return length;
}

function chunkAad(head: Uint8Array, id: Uint8Array): Uint8Array {
  const aad = new Uint8Array(SEALED_CHUNK_HEADER_SIZE + id.length);
  aad.set(head.subarray(0, SEALED_CHUNK_HEADER_SIZE), 0);
  aad.set(id, SEALED_CHUNK_HEADER_SIZE);
  return aad;
}

/**
 * Check and decrypt a format-2 chunk object stored under `id`: header
 * fields (before any decryption), size, then the tag. Throws `Error` with
 * the problem; the caller names the chunk. Returns the stored payload
 * (raw or zstd) and its header; the caller decompresses and checks the id.
 */
export function openChunk(
  keys: RepoKeys,
  id: Uint8Array,
  file: Uint8Array,
  maxLength: number,
): { header: SealedChunkHeader; payload: Uint8Array } {
  if (file.length < SEALED_CHUNK_HEADER_SIZE + TAG_SIZE) {
    throw new Error(`is ${file.length} bytes, shorter than a header and a tag`);
  }
  if (!magicIs(file, CHUNK_MAGIC)) throw new Error("bad magic (not a format 2 chunk)");
  const v = new DataView(file.buffer, file.byteOffset, SEALED_CHUNK_HEADER_SIZE);
  const header: SealedChunkHeader = {
    encoding: v.getUint32(8, true),
    length: v.getUint32(12, true),
    payloadLength: v.getUint32(16, true),
  };
  if (header.encoding !== 0 && header.encoding !== 1) {
    throw new Error(`unknown encoding ${header.encoding}`);
  }
  if (header.length < 1 || header.length > maxLength) {
    throw new Error(`length ${header.length} out of range 1..${maxLength}`);
  }
  if (file.length !== SEALED_CHUNK_HEADER_SIZE + header.payloadLength + TAG_SIZE) {
    throw new Error(`is ${file.length} bytes, header says ${header.payloadLength} + 48`);
  }
  const head = file.subarray(0, SEALED_CHUNK_HEADER_SIZE);
  const payload = open(
    chunkKeyOf(keys, id),
    file.subarray(20, 32),
    file.subarray(SEALED_CHUNK_HEADER_SIZE),
    chunkAad(head, id),
  );
  if (payload === null) {
    throw new Error("authentication failed (altered, or stored under another name)");
  }
  return { header, payload };
}

/** Seal the plaintext of the index or manifest stored under object name `name`. */
export function sealObject(keys: RepoKeys, name: string, plain: Uint8Array): Uint8Array {
  const head = new Uint8Array(SEALED_OBJECT_HEADER_SIZE);
  head.set(OBJECT_MAGIC, 0);
  const v = new DataView(head.buffer);
  v.setUint32(8, 2, true);
  v.setUint32(12, plain.length, true);
  head.set(randomNonce(), 16);
  const sealed = seal(metaKeyOf(keys, name), head.subarray(16), plain, objectAad(head, name));
  const out = new Uint8Array(SEALED_OBJECT_HEADER_SIZE + sealed.length);
  out.set(head, 0);
  out.set(sealed, SEALED_OBJECT_HEADER_SIZE);
  return out;
}

function objectAad(head: Uint8Array, name: string): Uint8Array {
  const n = enc.encode(name);
  const aad = new Uint8Array(SEALED_OBJECT_HEADER_SIZE + n.length);
  aad.set(head.subarray(0, SEALED_OBJECT_HEADER_SIZE), 0);
  aad.set(n, SEALED_OBJECT_HEADER_SIZE);
  return aad;
}

/** Open a sealed index or manifest stored under `name`; throws `Error` naming the problem. */
export function openObject(keys: RepoKeys, name: string, file: Uint8Array): Uint8Array {
  if (file.length < SEALED_OBJECT_HEADER_SIZE + TAG_SIZE || !magicIs(file, OBJECT_MAGIC)) {
    throw new Error("not a sealed object (bad magic or too short)");
  }
  const v = new DataView(file.buffer, file.byteOffset, SEALED_OBJECT_HEADER_SIZE);
  if (v.getUint32(8, true) !== 2) throw new Error(`sealed object version ${v.getUint32(8, true)}`);
  const length = v.getUint32(12, true);
  if (file.length !== SEALED_OBJECT_HEADER_SIZE + length + TAG_SIZE) {
    throw new Error(`is ${file.length} bytes, header says ${length} + 44`);
  }
  const plain = open(
    metaKeyOf(keys, name),
    file.subarray(16, SEALED_OBJECT_HEADER_SIZE),
    file.subarray(SEALED_OBJECT_HEADER_SIZE),
    objectAad(file.subarray(0, SEALED_OBJECT_HEADER_SIZE), name),
  );
  if (plain === null) {
    throw new Error("authentication failed (altered, or moved from another name)");
  }
  return plain;
}

/**
 * The keys of an encrypted repository: one random 64-byte master secret,
 * the three keys derived from it, and the key slots that keep it wrapped
 * under passphrases (`keys/<slot>.json`).
 *
 * - `idKey` = HKDF-SHA256(master, salt = repository id, "blksnap chunk id"): chunk ids are
 *   HMAC-SHA256(idKey, plaintext), so listing a bucket confirms nothing about its content.
 * - `chunkKey` = HKDF(..., "blksnap chunk key"): a chunk's own key is
 *   HMAC-SHA256(chunkKey, chunk id).
 * - `metaKey` = HKDF(..., "blksnap meta key"): an index's or manifest's key is
 *   HMAC-SHA256(metaKey, its object name); the config's MAC is under it too.
 * - A slot wraps the master secret with ChaCha20-Poly1305 under a key from scrypt
 *   (N = 2^17, r = 8, p = 1 by default, 128 MiB) of the passphrase and the slot's salt.
 *   Changing a passphrase rewrites a slot; the master secret and the data do not change.
 *
 * @module
 */

import { hkdfSync, scryptSync } from "node:crypto";
import { hmacSha256, KEY_SIZE, open, randomNonce, seal } from "./aead.ts";

/** Size of the master secret in bytes. */
export const MASTER_SIZE = 64;

/** The keys a reader and writer of an encrypted repository need. */
export interface RepoKeys {
  /** The master secret (wrapped by every slot). */
  master: Uint8Array;
  /** Key of the chunk ids (HMAC). */
  idKey: Uint8Array;
  /** Key the per-chunk keys derive from. */
  chunkKey: Uint8Array;
  /** Key the index and manifest keys derive from, and the config MAC's key. */
  metaKey: Uint8Array;
}

/** scrypt cost of a key slot. */
export interface ScryptParams {
  /** CPU/memory cost, a power of two. */
  N: number;
  /** Block size. */
  r: number;
  /** Parallelism. */
  p: number;
}

/** The default scrypt cost: 2^17, 8, 1 (128 MiB, about half a second). */
export const DEFAULT_SCRYPT: ScryptParams = { N: 1 << 17, r: 8, p: 1 };

/** A key slot as stored in `keys/<id>.json`. */
export interface KeySlot {
  /** `"blksnap-key"`. */
  format: "blksnap-key";
  /** Slot id, 16 hex digits. */
  id: string;
  /** When it was made. */
  created: string;
  /** Free text: who or what the passphrase belongs to. */
  label: string;
  /** The KDF and its parameters. */
  kdf: { name: "scrypt"; N: number; r: number; p: number; salt: string };
  /** Nonce of the wrapping, base64. */
  nonce: string;
  /** The master secret sealed under the KEK, base64 (64 + 16 bytes). */
  wrapped: string;
}

const enc = new TextEncoder();
const b64 = (b: Uint8Array): string => btoa(String.fromCharCode(...b));
const unb64 = (s: string): Uint8Array => Uint8Array.from(atob(s), (c) => c.charCodeAt(0));

/** Derive the working keys of `master` for repository `repoId`. */
export function deriveKeys(master: Uint8Array, repoId: string): RepoKeys {
  const derive = (info: string) =>
    new Uint8Array(hkdfSync("sha256", master, enc.encode(repoId), enc.encode(info), KEY_SIZE));
  return {
    master,
    idKey: derive("blksnap chunk id"),
    chunkKey: derive("blksnap chunk key"),
    metaKey: derive("blksnap meta key"),
  };
}

/** A new random master secret. */
export function newMaster(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(MASTER_SIZE));
}

/** The keyed id of a chunk: HMAC-SHA256(idKey, plaintext). */
export function chunkId(keys: RepoKeys, plain: Uint8Array): Uint8Array {
  return hmacSha256(keys.idKey, plain);
}

/** The key of chunk `id` (32 bytes). */
export function chunkKeyOf(keys: RepoKeys, id: Uint8Array): Uint8Array {
  return hmacSha256(keys.chunkKey, id);
}

/** The key of the index or manifest stored under `name` (e.g. `backups/<id>.json`). */
export function metaKeyOf(keys: RepoKeys, name: string): Uint8Array {
  return hmacSha256(keys.metaKey, enc.encode("object " + name));
}

function kek(passphrase: string, salt: Uint8Array, p: ScryptParams): Uint8Array {
  return new Uint8Array(
    scryptSync(passphrase.normalize("NFC"), salt, KEY_SIZE, {
      N: p.N,
      r: p.r,
      p: p.p,
      maxmem: 256 * p.N * p.r + (1 << 20),
    }),
  );
}

function slotAad(repoId: string, slotId: string): Uint8Array {
  return enc.encode(`blksnap key slot ${repoId} ${slotId}`);
}

/** Wrap `master` under `passphrase` in a new slot of repository `repoId`. */
export function makeSlot(
  master: Uint8Array,
  repoId: string,
  passphrase: string,
  options: { label?: string; scrypt?: ScryptParams } = {},
): KeySlot {
  const p = options.scrypt ?? DEFAULT_SCRYPT;
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const id = Array.from(
    crypto.getRandomValues(new Uint8Array(8)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  const nonce = randomNonce();
  const wrapped = seal(kek(passphrase, salt, p), nonce, master, slotAad(repoId, id));
  return {
    format: "blksnap-key",
    id,
    created: new Date().toISOString(),
    label: options.label ?? "",
    kdf: { name: "scrypt", N: p.N, r: p.r, p: p.p, salt: b64(salt) },
    nonce: b64(nonce),
    wrapped: b64(wrapped),
  };
}

/** The master secret in `slot` if `passphrase` opens it, else `null`. */
export function openSlot(slot: KeySlot, repoId: string, passphrase: string): Uint8Array | null {
  const k = kek(passphrase, unb64(slot.kdf.salt), slot.kdf);
  const m = open(k, unb64(slot.nonce), unb64(slot.wrapped), slotAad(repoId, slot.id));
  return m && m.length === MASTER_SIZE ? m : null;
}

/** Parse and check a key slot file; throws `TypeError` naming the problem. */
export function parseSlot(bytes: Uint8Array, name: string): KeySlot {
  let o: KeySlot;
  try {
    o = JSON.parse(new TextDecoder().decode(bytes));
  } catch (e) {
    throw new TypeError(`key slot ${name}: not JSON (${(e as Error).message})`);
  }
  const k = o?.kdf;
  const ok = typeof o === "object" && o !== null && o.format === "blksnap-key" &&
    typeof o.id === "string" && /^[0-9a-f]{16}$/.test(o.id) && typeof o.created === "string" &&
    typeof o.label === "string" && typeof o.nonce === "string" &&
    typeof o.wrapped === "string" && k?.name === "scrypt" &&
    Number.isSafeInteger(k.N) && k.N >= 2 && (k.N & (k.N - 1)) === 0 && k.N <= 1 << 22 &&
    Number.isSafeInteger(k.r) && k.r >= 1 && k.r <= 32 && Number.isSafeInteger(k.p) &&
    k.p >= 1 && k.p <= 16 && typeof k.salt === "string";
  if (!ok) throw new TypeError(`key slot ${name}: bad fields`);
  return o;
}

/** The bytes of a key slot file. */
export function encodeSlot(slot: KeySlot): Uint8Array {
  return enc.encode(JSON.stringify(slot, null, 2) + "\n");
}

/**
 * The one AEAD of encrypted repositories, ChaCha20-Poly1305 (RFC 8439:
 * 32-byte key, 12-byte nonce, 16-byte tag), computed by OpenSSL's libcrypto
 * through FFI when it can be opened, else by `node:crypto`. Both give the
 * same bytes (tests/unit/crypto checks it), so a repository written with one
 * is read with the other.
 *
 * Why ChaCha20-Poly1305 and not AES-256-GCM: it is fast in both
 * implementations, while Deno's `node:crypto` and WebCrypto AES-GCM are not
 * (bench/cipher.ts; docs/repository-format.md has the figures), so a host
 * without libcrypto still backs up at full speed.
 *
 * @module
 */

import { createCipheriv, createDecipheriv, createHmac } from "node:crypto";
import { NONCE_SIZE, openLibcrypto, TAG_SIZE } from "./libcrypto.ts";

export { NONCE_SIZE, TAG_SIZE };

/** Key length in bytes. */
export const KEY_SIZE = 32;

/** Which implementation runs the cipher in this process: `"libcrypto"` or `"node:crypto"`. */
export function aeadImplementation(): "libcrypto" | "node:crypto" {
  return openLibcrypto() ? "libcrypto" : "node:crypto";
}

/** A fresh random nonce. Random nonces are safe here: every chunk has its own key. */
export function randomNonce(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(NONCE_SIZE));
}

/**
 * Encrypt `plain` under `key` and `nonce`, authenticating `aad` too:
 * returns ciphertext ‖ tag (`plain.length + 16` bytes), written into `out`
 * when given.
 *
 * @example Seal, then open
 * ```ts
 * import { open, randomNonce, seal } from "./aead.ts";
 * const key = crypto.getRandomValues(new Uint8Array(32));
 * const nonce = randomNonce();
 * const aad = new TextEncoder().encode("name");
 * const sealed = seal(key, nonce, new TextEncoder().encode("secret"), aad);
 * console.log(new TextDecoder().decode(open(key, nonce, sealed, aad)!)); // "secret"
 * ```
 */
export function seal(
  key: Uint8Array,
  nonce: Uint8Array,
  plain: Uint8Array,
  aad: Uint8Array,
  out?: Uint8Array,
): Uint8Array {
  const lc = openLibcrypto();
  if (lc) return lc.seal("chacha20-poly1305", key, nonce, plain, aad, out);
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_SIZE });
  c.setAAD(aad, { plaintextLength: plain.length });
  const head = c.update(plain);
  const tail = c.final();
  const sealed = out ?? new Uint8Array(plain.length + TAG_SIZE);
  sealed.set(head, 0);
  sealed.set(tail, head.length);
  sealed.set(c.getAuthTag(), plain.length);
  return sealed;
}

/** Decrypt ciphertext ‖ tag; `null` if the tag does not verify (tampered, or another key). */
export function open(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array | null {
  if (sealed.length < TAG_SIZE) return null;
  const lc = openLibcrypto();
  if (lc) return lc.open("chacha20-poly1305", key, nonce, sealed, aad);
  const body = sealed.subarray(0, sealed.length - TAG_SIZE);
  const d = createDecipheriv("chacha20-poly1305", key, nonce, { authTagLength: TAG_SIZE });
  d.setAAD(aad, { plaintextLength: body.length });
  d.setAuthTag(sealed.subarray(sealed.length - TAG_SIZE));
  try {
    const head = d.update(body);
    const tail = d.final();
    const out = new Uint8Array(body.length);
    out.set(head, 0);
    out.set(tail, head.length);
    return out;
  } catch {
    return null;
  }
}

/** HMAC-SHA256 of `data` under `key` (libcrypto when open, else `node:crypto`). */
export function hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array {
  const lc = openLibcrypto();
  if (lc) return lc.hmacSha256(key, data);
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

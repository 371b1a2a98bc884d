/**
 * OpenSSL's libcrypto through `Deno.dlopen`: AES-256-GCM and
 * ChaCha20-Poly1305 (one-shot seal and open of a whole buffer) and
 * HMAC-SHA256. Every Debian host has `libcrypto.so.3` (package libssl3:
 * openssh, curl and Python need it). Why FFI: Deno's `node:crypto` AES-GCM
 * runs at 30-70 MB/s here, OpenSSL's at several GB/s per core (AES-NI);
 * bench/cipher.ts measures them side by side.
 *
 * Opened on first use, never at import; {@linkcode openLibcrypto} returns
 * `null` when the library or `--allow-ffi` is missing, and callers fall back
 * to `node:crypto`.
 *
 * @module
 */

/** The AEADs this binding offers. */
export type AeadName = "aes-256-gcm" | "chacha20-poly1305";

const symbols = {
  EVP_CIPHER_CTX_new: { parameters: [], result: "pointer" },
  EVP_CIPHER_CTX_free: { parameters: ["pointer"], result: "void" },
  EVP_aes_256_gcm: { parameters: [], result: "pointer" },
  EVP_chacha20_poly1305: { parameters: [], result: "pointer" },
  EVP_sha256: { parameters: [], result: "pointer" },
  // Data buffers are passed as raw pointers (`Deno.UnsafePointer.of`): Deno's "buffer"
  // parameters measured 10x slower than pointers on 4 MiB buffers (209 vs 2074 MiB/s for
  // AES-GCM here), the difference growing with size. The buffers stay referenced for the
  // duration of each synchronous call.
  // int EVP_CipherInit_ex(ctx, cipher, engine, key, iv, enc)
  EVP_CipherInit_ex: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "pointer", "i32"],
    result: "i32",
  },
  // int EVP_CipherUpdate(ctx, out, int *outl, in, int inl)
  EVP_CipherUpdate: {
    parameters: ["pointer", "pointer", "pointer", "pointer", "i32"],
    result: "i32",
  },
  // int EVP_CipherFinal_ex(ctx, out, int *outl)
  EVP_CipherFinal_ex: { parameters: ["pointer", "pointer", "pointer"], result: "i32" },
  // int EVP_CIPHER_CTX_ctrl(ctx, type, arg, ptr)
  EVP_CIPHER_CTX_ctrl: { parameters: ["pointer", "i32", "i32", "pointer"], result: "i32" },
  // unsigned char *HMAC(md, key, key_len, d, n, md_out, unsigned *md_len)
  HMAC: {
    parameters: ["pointer", "pointer", "i32", "pointer", "usize", "pointer", "pointer"],
    result: "pointer",
  },
} as const;

const EVP_CTRL_AEAD_SET_IVLEN = 0x9;
const EVP_CTRL_AEAD_GET_TAG = 0x10;
const EVP_CTRL_AEAD_SET_TAG = 0x11;

/** Tag length of both AEADs, in bytes. */
export const TAG_SIZE = 16;
/** Nonce length of both AEADs, in bytes. */
export const NONCE_SIZE = 12;

/** The AEAD and HMAC functions of libcrypto. */
export interface Libcrypto {
  /** Path or soname that was opened. */
  readonly path: string;
  /**
   * Encrypt `plain` with `key` (32 bytes) and `nonce` (12 bytes), binding
   * `aad`: returns ciphertext ‖ 16-byte tag, written into `out` when given
   * (`plain.length + 16` bytes; saves an allocation of a chunk's size).
   */
  seal(
    aead: AeadName,
    key: Uint8Array,
    nonce: Uint8Array,
    plain: Uint8Array,
    aad: Uint8Array,
    out?: Uint8Array,
  ): Uint8Array;
  /** Decrypt ciphertext ‖ tag; `null` when the tag does not match (tampered or wrong key). */
  open(
    aead: AeadName,
    key: Uint8Array,
    nonce: Uint8Array,
    sealed: Uint8Array,
    aad: Uint8Array,
  ): Uint8Array | null;
  /** HMAC-SHA256 of `data` under `key`. */
  hmacSha256(key: Uint8Array, data: Uint8Array): Uint8Array;
}

let cached: Libcrypto | null | undefined;

/** Candidate names, in order: the Debian 12/13 soname, then the unversioned dev link. */
const CANDIDATES = ["libcrypto.so.3", "libcrypto.so"];

/**
 * libcrypto, opened once; `null` if no candidate opens or FFI is not
 * permitted. `BLKSNAP_NO_LIBCRYPTO=1` forces `null` (tests of the fallback).
 *
 * @example Seal and open a buffer
 * ```ts ignore
 * import { openLibcrypto } from "./libcrypto.ts";
 * const lc = openLibcrypto();
 * if (lc) {
 *   const key = new Uint8Array(32), nonce = new Uint8Array(12), aad = new Uint8Array(0);
 *   const sealed = lc.seal("aes-256-gcm", key, nonce, new Uint8Array([1, 2, 3]), aad);
 *   console.log(lc.open("aes-256-gcm", key, nonce, sealed, aad)); // Uint8Array [1, 2, 3]
 * }
 * ```
 */
export function openLibcrypto(): Libcrypto | null {
  if (cached !== undefined) return cached;
  cached = null;
  try {
    if (Deno.env.get("BLKSNAP_NO_LIBCRYPTO") === "1") return null;
  } catch {
    // no --allow-env: the variable cannot be set, go on
  }
  for (const path of CANDIDATES) {
    try {
      cached = bind(path, Deno.dlopen(path, symbols).symbols);
      return cached;
    } catch {
      // next candidate; no FFI permission makes every one fail
    }
  }
  return null;
}

type Syms = Deno.DynamicLibrary<typeof symbols>["symbols"];

function bind(path: string, s: Syms): Libcrypto {
  const ciphers: Record<AeadName, Deno.PointerValue> = {
    "aes-256-gcm": s.EVP_aes_256_gcm(),
    "chacha20-poly1305": s.EVP_chacha20_poly1305(),
  };
  const sha256 = s.EVP_sha256();
  const outl = new Int32Array(1);
  const outlPtr = Deno.UnsafePointer.of(outl);
  const nul = new Uint8Array(0);
  const ptr = (
    b: Uint8Array,
  ): Deno.PointerValue => (b.length === 0 ? null : Deno.UnsafePointer.of(b));
  // A non-null pointer for empty input: OpenSSL wants a valid address even for 0 bytes.
  const scratch = new Uint8Array(TAG_SIZE);

  // One context per AEAD and direction, made once and re-keyed per call: creating a context
  // and initialising it with a cipher costs an OpenSSL 3 provider fetch (tens of µs), re-keying
  // an initialised one does not. JavaScript runs one call at a time per isolate, and each worker
  // loads its own copy of this module, so a context is never used by two calls at once.
  const contexts = new Map<string, Deno.PointerValue>();
  const context = (aead: AeadName, enc: number): Deno.PointerValue => {
    const name = `${aead}/${enc}`;
    let ctx = contexts.get(name);
    if (ctx === undefined) {
      ctx = s.EVP_CIPHER_CTX_new();
      if (ctx === null) throw new Error("EVP_CIPHER_CTX_new failed");
      if (s.EVP_CipherInit_ex(ctx, ciphers[aead], null, null, null, enc) !== 1) {
        s.EVP_CIPHER_CTX_free(ctx);
        throw new Error(`EVP_CipherInit_ex(${aead}) failed`);
      }
      // 12 bytes is the default nonce length of both AEADs; set it anyway, once.
      if (s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_IVLEN, NONCE_SIZE, null) !== 1) {
        s.EVP_CIPHER_CTX_free(ctx);
        throw new Error("EVP_CTRL_AEAD_SET_IVLEN failed");
      }
      contexts.set(name, ctx);
    }
    return ctx;
  };

  const run = (
    aead: AeadName,
    encrypt: boolean,
    key: Uint8Array,
    nonce: Uint8Array,
    input: Uint8Array,
    aad: Uint8Array,
    tag: Uint8Array,
    into?: Uint8Array,
  ): Uint8Array | null => {
    if (key.length !== 32) throw new RangeError("AEAD key must be 32 bytes");
    if (nonce.length !== NONCE_SIZE) throw new RangeError("AEAD nonce must be 12 bytes");
    const enc = encrypt ? 1 : 0;
    const ctx = context(aead, enc);
    if (s.EVP_CipherInit_ex(ctx, null, null, ptr(key), ptr(nonce), enc) !== 1) {
      throw new Error("EVP_CipherInit_ex(key) failed");
    }
    if (aad.length > 0 && s.EVP_CipherUpdate(ctx, null, outlPtr, ptr(aad), aad.length) !== 1) {
      throw new Error("EVP_CipherUpdate(aad) failed");
    }
    const size = input.length + (encrypt ? TAG_SIZE : 0);
    if (into !== undefined && into.length !== size) {
      throw new RangeError(`output buffer is ${into.length} bytes, want ${size}`);
    }
    const out = into ?? new Uint8Array(size);
    if (input.length > 0) {
      if (s.EVP_CipherUpdate(ctx, ptr(out), outlPtr, ptr(input), input.length) !== 1) {
        throw new Error("EVP_CipherUpdate failed");
      }
    }
    if (
      !encrypt && s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, TAG_SIZE, ptr(tag)) !== 1
    ) {
      throw new Error("EVP_CTRL_AEAD_SET_TAG failed");
    }
    // GCM and ChaCha20-Poly1305 are stream modes: Final writes no bytes; on decryption it
    // checks the tag.
    if (s.EVP_CipherFinal_ex(ctx, Deno.UnsafePointer.of(scratch), outlPtr) !== 1) {
      if (!encrypt) return null;
      throw new Error("EVP_CipherFinal_ex failed");
    }
    if (encrypt) {
      const t = out.subarray(input.length);
      if (s.EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, TAG_SIZE, ptr(t)) !== 1) {
        throw new Error("EVP_CTRL_AEAD_GET_TAG failed");
      }
    }
    return out;
  };

  return {
    path,
    seal: (aead, key, nonce, plain, aad, out) =>
      run(aead, true, key, nonce, plain, aad, nul, out) as Uint8Array,
    open: (aead, key, nonce, sealed, aad) => {
      if (sealed.length < TAG_SIZE) return null;
      const body = sealed.subarray(0, sealed.length - TAG_SIZE);
      const tag = sealed.slice(sealed.length - TAG_SIZE);
      return run(aead, false, key, nonce, body, aad, tag);
    },
    hmacSha256: (key, data) => {
      const md = new Uint8Array(32);
      const len = new Uint32Array(1);
      const r = s.HMAC(
        sha256,
        Deno.UnsafePointer.of(key.length === 0 ? scratch : key),
        key.length,
        Deno.UnsafePointer.of(data.length === 0 ? scratch : data),
        BigInt(data.length),
        Deno.UnsafePointer.of(md),
        Deno.UnsafePointer.of(len),
      );
      if (r === null) throw new Error("HMAC failed");
      return md;
    },
  };
}

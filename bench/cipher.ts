/**
 * The AEADs and MACs encryption at rest can use in Deno, side by side on the
 * same 4 MiB chunks, against the work a plain backup already does per chunk
 * (SHA-256 + zstd level 1 of a half-compressible chunk):
 *
 * - OpenSSL libcrypto through FFI (`Deno.dlopen`): AES-256-GCM, ChaCha20-Poly1305, HMAC-SHA256;
 * - `node:crypto`: AES-256-GCM, ChaCha20-Poly1305, HMAC-SHA256;
 * - WebCrypto (`crypto.subtle`): AES-GCM.
 *
 * Each line is MiB per CPU-second of one implementation (ours) against the
 * per-chunk work of a plain backup (peer), so `ratio` > 10 means the cipher
 * adds less than 10 % to the chunk work. The last line is the whole
 * per-chunk step of an encrypted repository (keyed id, zstd, seal) against
 * the plain one (SHA-256, zstd, CRC-32). Prints `BENCH` lines (bench/run.ts). `--quick`: 3
 * chunks, one repetition.
 *
 * @module
 */

import { createCipheriv, createHash, createHmac } from "node:crypto";
import process from "node:process";
import zlib from "node:zlib";
import { openLibcrypto } from "../lib/backup/crypto/libcrypto.ts";
import { aeadImplementation } from "../lib/backup/crypto/aead.ts";
import { chunkId, deriveKeys, newMaster } from "../lib/backup/crypto/keys.ts";
import { sealChunk } from "../lib/backup/crypto/sealed.ts";
import { median, spread } from "./_results.ts";

const quick = Deno.args.includes("--quick");
const reps = quick ? 1 : 5;
const chunks = quick ? 3 : 16;
const size = 4 << 20;
const conditions = `Deno ${Deno.version.deno}, ${chunks} x 4 MiB chunks, 1 thread`;

// Half-compressible data: random 4 KiB blocks alternating with text-like blocks.
const data = Array.from({ length: chunks }, (_, c) => {
  const b = new Uint8Array(size);
  for (let o = 0; o < size; o += 8192) {
    crypto.getRandomValues(b.subarray(o, o + 4096));
    b.fill(97 + ((o >> 13) + c) % 26, o + 4096, o + 8192);
  }
  return b;
});
const key = crypto.getRandomValues(new Uint8Array(32));
const nonce = () => crypto.getRandomValues(new Uint8Array(12));
const aad = new TextEncoder().encode("blksnap chunk aad");

/**
 * MiB per CPU-second of this process (user + system), not per wall second: the machine is
 * shared, and CPU time is what a backup pays for the cipher whatever else runs. WebCrypto runs
 * on Deno's thread pool, whose time is this process's too.
 */
async function mibPerSec(fn: (b: Uint8Array) => unknown | Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  for (const b of data.slice(0, 2)) await fn(b); // warm up: JIT, contexts, first allocations
  for (let r = 0; r < reps; r++) {
    const c = process.cpuUsage();
    for (const b of data) await fn(b);
    const d = process.cpuUsage(c);
    out.push((chunks * size) / (1 << 20) / ((d.user + d.system) / 1e6));
  }
  return out;
}

const baseline = await mibPerSec((b) => {
  createHash("sha256").update(b).digest();
  zlib.zstdCompressSync(b, { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } });
});
const base = median(baseline);

function report(id: string, metric: string, ours: number[]): void {
  const o = median(ours);
  console.log(`BENCH ${
    JSON.stringify({
      id,
      metric,
      unit: "MiB/s",
      ours: Math.round(o),
      peer: Math.round(base),
      peerName: "SHA-256 + zstd-1 per chunk (plain backup work)",
      higherIsBetter: true,
      reps,
      spread: Number(spread(ours).toFixed(3)),
      ratio: Number((o / base).toFixed(3)),
      conditions,
    })
  }`);
  console.log(
    `  ${metric}: ${o.toFixed(0)} MiB/s, adds ${(100 * base / o).toFixed(1)} % to the chunk work`,
  );
}

const lc = openLibcrypto();
// The repository seals into the object buffer it sends; so does the benchmark.
const sealedOut = new Uint8Array(size + 16);
if (lc) {
  report(
    "cipher.ffi_aes_gcm.vs_chunk_work",
    "cipher: libcrypto FFI AES-256-GCM seal",
    await mibPerSec((b) => lc.seal("aes-256-gcm", key, nonce(), b, aad, sealedOut)),
  );
  report(
    "cipher.ffi_chacha20_poly1305.vs_chunk_work",
    "cipher: libcrypto FFI ChaCha20-Poly1305 seal",
    await mibPerSec((b) => lc.seal("chacha20-poly1305", key, nonce(), b, aad, sealedOut)),
  );
  report(
    "cipher.ffi_hmac_sha256.vs_chunk_work",
    "cipher: libcrypto FFI HMAC-SHA256 (chunk id)",
    await mibPerSec((b) => lc.hmacSha256(key, b)),
  );
} else {
  console.log("  libcrypto not available: FFI lines skipped");
}
for (const name of ["aes-256-gcm", "chacha20-poly1305"] as const) {
  report(
    `cipher.node_${name.replaceAll("-", "_")}.vs_chunk_work`,
    `cipher: node:crypto ${name} seal`,
    await mibPerSec((b) => {
      // deno-lint-ignore no-explicit-any
      const c = createCipheriv(name, key, nonce(), { authTagLength: 16 } as any) as any;
      c.setAAD(aad, { plaintextLength: b.length });
      c.update(b);
      c.final();
      return c.getAuthTag();
    }),
  );
}
report(
  "cipher.node_hmac_sha256.vs_chunk_work",
  "cipher: node:crypto HMAC-SHA256 (chunk id)",
  await mibPerSec((b) => createHmac("sha256", key).update(b).digest()),
);
const wkey = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
report(
  "cipher.webcrypto_aes_gcm.vs_chunk_work",
  "cipher: WebCrypto AES-GCM seal",
  await mibPerSec((b) =>
    crypto.subtle.encrypt(
      { name: "AES-GCM", iv: nonce(), additionalData: aad },
      wkey,
      b as Uint8Array<ArrayBuffer>,
    )
  ),
);

// The whole chunk step, encrypted (format 2) against plain (format 1).
const keys = deriveKeys(newMaster(), "bench");
// Interleaved, best of the repetitions: these steps allocate chunk-sized buffers, and a
// garbage collection landing in one repetition would otherwise decide the ratio.
const plainStep: number[] = [];
const sealedStep: number[] = [];
for (let r = 0; r < reps; r++) {
  plainStep.push(
    ...await mibPerSec((b) => {
      createHash("sha256").update(b).digest();
      const z = zlib.zstdCompressSync(b, {
        params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 },
      });
      zlib.crc32(z);
    }),
  );
  sealedStep.push(
    ...await mibPerSec((b) => {
      const id = chunkId(keys, b);
      const z = zlib.zstdCompressSync(b, {
        params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 },
      });
      const zb = new Uint8Array(z.buffer, z.byteOffset, z.length);
      sealChunk(keys, id, { encoding: 1, length: b.length, payloadLength: zb.length }, zb);
    }),
  );
}
const o = Math.max(...sealedStep);
const p = Math.max(...plainStep);
console.log(`BENCH ${
  JSON.stringify({
    id: "cipher.chunk_step_encrypted.vs_plain",
    metric: `cipher: chunk step encrypted (${aeadImplementation()}) vs plain`,
    unit: "MiB/s",
    ours: Math.round(o),
    peer: Math.round(p),
    peerName: "plain chunk step (SHA-256, zstd-1, CRC-32)",
    higherIsBetter: true,
    reps,
    spread: Number(spread(sealedStep).toFixed(3)),
    ratio: Number((o / p).toFixed(3)),
    conditions,
  })
}`);
console.log(
  `  chunk step: encrypted ${o.toFixed(0)} vs plain ${p.toFixed(0)} MiB/CPU-s: +${
    (100 * (p / o - 1)).toFixed(1)
  } % CPU`,
);

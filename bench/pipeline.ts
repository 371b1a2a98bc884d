/**
 * The backup pipeline's stages, one core each, against the native tools on
 * the same bytes (the tools run as processes reading the page cache, so
 * their figures include a read we do not pay; each is the best of the
 * repetitions' medians):
 *
 * - `pipeline.sha256.vs_openssl`: SHA-256 (`node:crypto`) vs
 *   `openssl dgst -sha256` (both use the CPU's SHA extensions when it has them);
 * - `pipeline.zstd.vs_zstd`: zstd level 1 (`node:zlib`) vs `zstd -1 -T1`;
 * - `pipeline.unzstd.vs_zstd`: zstd decompression vs `zstd -d -T1`;
 * - `pipeline.zero_test.vs_memcpy`: our all-zero test of a 4 MiB chunk
 *   (`isAllZero`) vs copying the same bytes (a memcmp reads what a memcpy
 *   reads and writes nothing, so parity or better is the goal).
 *
 * The data is half pseudo-random, half compressible text, cut into 4 MiB
 * chunks. Prints `BENCH` lines (see bench/run.ts). `--quick`: 32 MiB, one
 * repetition.
 *
 * @module
 */

import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { isAllZero } from "../lib/backup/format.ts";
import { emit, fillRandom, have, MiB, quick, runTimed, sh } from "./_lib.ts";

const size = quick ? 32 * MiB : 256 * MiB;
const chunkSize = 4 * MiB;
const reps = quick ? 1 : 5;

function makeData(): Uint8Array {
  const buf = new Uint8Array(size);
  fillRandom(buf.subarray(0, size / 2), 0x9e3779b9);
  const text = new TextEncoder().encode(
    "Nov 24 03:16:00 host kernel: blksnap: tracker [253:0] attached, block 65536 bytes\n",
  );
  for (let off = size / 2, n = 0; off < size; off += text.length, n++) {
    buf.set(text.subarray(0, Math.min(text.length, size - off)), off);
    buf[off] = 48 + (n % 10);
  }
  return buf;
}

/** MiB/s of `fn` over `bytes`, once per repetition. */
function measure(bytes: number, fn: () => void): number[] {
  const out: number[] = [];
  fn(); // warm-up: JIT and allocations are not the stage's cost
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    out.push(bytes / MiB / ((performance.now() - t) / 1000));
  }
  return out;
}

/** MiB/s of a shell command over `bytes`, once per repetition. */
async function measureCmd(bytes: number, script: string): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < reps; r++) out.push(bytes / MiB / (await runTimed(script)).seconds);
  return out;
}

const data = makeData();
const chunks: Uint8Array[] = [];
for (let off = 0; off < size; off += chunkSize) chunks.push(data.subarray(off, off + chunkSize));
const dir = await Deno.makeTempDir({ prefix: "blksnap-bench-pipeline-" });
const file = `${dir}/data.bin`;
await Deno.writeFile(file, data);
const cond = `${size / MiB} MiB, 4 MiB chunks, half random half text, one core, ` +
  `Deno ${Deno.version.deno}; the tools' figures include reading the page cache`;
const level1 = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } };

try {
  await sh(`cat '${file}' >/dev/null`); // warm the page cache for the tools
  const sha = measure(size, () => {
    for (const c of chunks) createHash("sha256").update(c).digest();
  });
  if (await have("openssl")) {
    emit({
      id: "pipeline.sha256.vs_openssl",
      metric: "SHA-256 per core",
      unit: "MiB/s",
      ours: sha,
      peer: await measureCmd(size, `openssl dgst -sha256 '${file}' >/dev/null`),
      peerName: "openssl dgst -sha256",
      higherIsBetter: true,
      conditions: cond,
    });
  }

  const compressed: Uint8Array[] = [];
  const z = measure(size, () => {
    compressed.length = 0;
    for (const c of chunks) compressed.push(zlib.zstdCompressSync(c, level1));
  });
  const unz = measure(size, () => {
    for (const c of compressed) zlib.zstdDecompressSync(c, { maxOutputLength: chunkSize });
  });
  if (await have("zstd")) {
    emit({
      id: "pipeline.zstd.vs_zstd",
      metric: "zstd -1 per core",
      unit: "MiB/s",
      ours: z,
      peer: await measureCmd(size, `zstd -1 -T1 -q -c '${file}' >/dev/null`),
      peerName: "zstd -1 -T1",
      higherIsBetter: true,
      conditions: cond,
    });
    await sh(`zstd -1 -T1 -q -c '${file}' >'${file}.zst' && cat '${file}.zst' >/dev/null`);
    emit({
      id: "pipeline.unzstd.vs_zstd",
      metric: "zstd decompression per core",
      unit: "MiB/s",
      ours: unz,
      peer: await measureCmd(size, `zstd -d -T1 -q -c '${file}.zst' >/dev/null`),
      peerName: "zstd -d -T1",
      higherIsBetter: true,
      conditions: cond,
    });
  }

  const zeros = new Uint8Array(chunkSize);
  const copy = new Uint8Array(chunkSize);
  const rounds = size / chunkSize;
  emit({
    id: "pipeline.zero_test.vs_memcpy",
    metric: "all-zero test of a zero chunk (isAllZero) vs copying it",
    unit: "MiB/s",
    ours: measure(size, () => {
      for (let i = 0; i < rounds; i++) if (!isAllZero(zeros)) throw new Error("not zero");
    }),
    peer: measure(size, () => {
      for (let i = 0; i < rounds; i++) copy.set(zeros);
    }),
    peerName: "memory copy of the same bytes",
    higherIsBetter: true,
    conditions: `${rounds} zero chunks of 4 MiB, one core, Deno ${Deno.version.deno}`,
  });
} finally {
  await Deno.remove(dir, { recursive: true });
}

/**
 * The backup pipeline's CPU cost per core, against the standard tools on the
 * same bytes:
 *
 * - SHA-256 (`node:crypto`) vs `sha256sum`;
 * - zstd level 1 (`node:zlib`) vs `zstd -1 -T1`;
 * - hash + compress per chunk (what a full backup does per chunk) vs
 *   `sha256sum` then `zstd -1` (their times added);
 * - the async pipeline on every core (`crypto.subtle` + async zstd, chunk
 *   files encoded as stored) vs a memory copy of the same bytes, the upper limit.
 *
 * The data is half pseudo-random, half compressible text, cut into 4 MiB
 * chunks; no zero chunks (they skip hashing). Files are read once before
 * timing so the peers read from the page cache. Prints `BENCH` lines (see
 * bench/run.ts). `--quick`: 32 MiB, one repetition.
 *
 * @module
 */

import { createHash } from "node:crypto";
import zlib from "node:zlib";
import { digestOf, encodeChunk } from "../lib/backup/chunk.ts";
import { backup, FileSource, Repository } from "../lib/backup/mod.ts";
import { median, spread } from "./_results.ts";

const quick = Deno.args.includes("--quick");
const MiB = 1024 * 1024;
const size = quick ? 32 * MiB : 256 * MiB;
const chunkSize = 4 * MiB;
const reps = quick ? 1 : 3;
const cores = navigator.hardwareConcurrency;

function makeData(): Uint8Array {
  const buf = new Uint8Array(size);
  let x = 0x9e3779b9;
  const words = new Uint32Array(buf.buffer, 0, size / 8); // first half random
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  const text = new TextEncoder().encode(
    "Nov 24 03:16:00 host kernel: blksnap: tracker [253:0] attached, block 65536 bytes\n",
  );
  for (let off = size / 2, n = 0; off < size; off += text.length, n++) {
    buf.set(text.subarray(0, Math.min(text.length, size - off)), off);
    buf[off] = 48 + (n % 10);
  }
  return buf;
}

async function have(cmd: string): Promise<boolean> {
  try {
    return (await new Deno.Command(cmd, { args: ["--version"], stdout: "null", stderr: "null" })
      .output()).success;
  } catch {
    return false;
  }
}

async function timeCmd(cmd: string, args: string[]): Promise<number> {
  const t = performance.now();
  const out = await new Deno.Command(cmd, { args, stdout: "null", stderr: "piped" }).output();
  if (!out.success) throw new Error(`${cmd} failed: ${new TextDecoder().decode(out.stderr)}`);
  return (performance.now() - t) / 1000;
}

function measure(fn: () => void): number[] {
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    fn();
    out.push(size / MiB / ((performance.now() - t) / 1000));
  }
  return out;
}

async function measureAsync(fn: () => Promise<void>): Promise<number[]> {
  const out: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t = performance.now();
    await fn();
    out.push(size / MiB / ((performance.now() - t) / 1000));
  }
  return out;
}

function emit(
  metric: string,
  ours: number[],
  peer: number[],
  peerName: string,
  conditions: string,
): void {
  const o = median(ours);
  const p = median(peer);
  console.log(
    `BENCH ${
      JSON.stringify({
        metric,
        unit: "MiB/s",
        ours: Math.round(o),
        peer: Math.round(p),
        peerName,
        higherIsBetter: true,
        reps,
        spread: Number(spread(ours).toFixed(3)),
        ratio: Number((o / p).toFixed(3)),
        conditions,
      })
    }`,
  );
}

const data = makeData();
const chunks: Uint8Array[] = [];
for (let off = 0; off < size; off += chunkSize) chunks.push(data.subarray(off, off + chunkSize));
const dir = await Deno.makeTempDir({ prefix: "blksnap-bench-pipeline-" });
const file = `${dir}/data.bin`;
await Deno.writeFile(file, data);
await Deno.readFile(file); // warm the page cache
const cond = `${size / MiB} MiB, 4 MiB chunks, half random half text, ${cores} cores, ` +
  `Deno ${Deno.version.deno}`;
const level1 = { params: { [zlib.constants.ZSTD_c_compressionLevel]: 1 } };

try {
  // 1. SHA-256, one core
  const hashOurs = measure(() => {
    for (const c of chunks) createHash("sha256").update(c).digest();
  });
  if (await have("sha256sum")) {
    const peer: number[] = [];
    for (let r = 0; r < reps; r++) peer.push(size / MiB / await timeCmd("sha256sum", [file]));
    emit("SHA-256 per core", hashOurs, peer, "sha256sum", cond);
  }

  // 2. zstd -1, one core
  const zOurs = measure(() => {
    for (const c of chunks) zlib.zstdCompressSync(c, level1);
  });
  const haveZstd = await have("zstd");
  const zPeer: number[] = [];
  if (haveZstd) {
    for (let r = 0; r < reps; r++) {
      zPeer.push(size / MiB / await timeCmd("zstd", ["-1", "-T1", "-q", "-c", file]));
    }
    emit("zstd -1 per core", zOurs, zPeer, "zstd -1 -T1", cond);
  }

  // 3. hash + compress per chunk, one core (what a full backup does per chunk)
  const bothOurs = measure(() => {
    for (const c of chunks) {
      createHash("sha256").update(c).digest();
      zlib.zstdCompressSync(c, level1);
    }
  });
  const bothPeer: number[] = [];
  if (haveZstd && await have("sha256sum")) {
    for (let r = 0; r < reps; r++) {
      const t = await timeCmd("sha256sum", [file]) +
        await timeCmd("zstd", ["-1", "-T1", "-q", "-c", file]);
      bothPeer.push(size / MiB / t);
    }
    emit("hash + compress per core", bothOurs, bothPeer, "sha256sum then zstd -1 -T1", cond);
  }

  // 4. the async pipeline on every core vs a memory copy
  const pipeline = await measureAsync(async () => {
    const inFlight = new Set<Promise<void>>();
    for (const c of chunks) {
      while (inFlight.size >= Math.max(2, cores)) await Promise.race(inFlight);
      const p: Promise<void> = (async () => {
        await digestOf(c);
        await encodeChunk(c, 1);
      })().finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
    await Promise.all(inFlight);
  });
  const copy = new Uint8Array(size);
  const memcpy = measure(() => copy.set(data));
  emit(
    "hash + compress pipeline, all cores, vs memory copy",
    pipeline,
    memcpy,
    "memory copy",
    cond,
  );

  // 5. backup() of the file: CPU work offloaded to the thread pool (default) vs main thread
  const runBackup = async (offload: boolean): Promise<number> => {
    const repoDir = `${dir}/repo-${offload}-${crypto.randomUUID()}`;
    const repo = await Repository.init(repoDir, { chunkSize });
    using src = await FileSource.open(file);
    const t = performance.now();
    await backup(src, repo, { offload });
    const mibs = size / MiB / ((performance.now() - t) / 1000);
    await Deno.remove(repoDir, { recursive: true });
    return mibs;
  };
  const pool: number[] = [];
  const main: number[] = [];
  for (let r = 0; r < reps; r++) {
    pool.push(await runBackup(true));
    main.push(await runBackup(false));
  }
  emit(
    "backup() full of a file, CPU on the thread pool (default) vs on the main thread",
    pool,
    main,
    "backup({ offload: false })",
    cond,
  );
  if (bothPeer.length > 0) {
    emit(
      "backup() full of a file (read, hash, compress, store) vs sha256sum then zstd -1",
      pool,
      bothPeer,
      "sha256sum then zstd -1 -T1",
      cond,
    );
  }
} finally {
  await Deno.remove(dir, { recursive: true });
}

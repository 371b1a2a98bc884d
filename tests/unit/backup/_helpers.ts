// Shared helpers of the backup tests: temp dirs, images, a CBT map built from
// bytes with the seed's semantics, and in-memory sources.

import { join } from "node:path";
import { createHash } from "node:crypto";
import type { BackupSource, CbtMapLike, ChangedExtent } from "../../../lib/backup/mod.ts";

/** A temp directory removed by `await using`. */
export async function tempDir(): Promise<{ path: string } & AsyncDisposable> {
  const path = await Deno.makeTempDir({ prefix: "blksnap-backup-test-" });
  return {
    path,
    [Symbol.asyncDispose]: () => Deno.remove(path, { recursive: true }),
  };
}

/** Deterministic pseudo-random bytes (xorshift32). */
export function pseudoRandom(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = seed >>> 0 || 1;
  const words = new Uint32Array(out.buffer, 0, length >> 2);
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  for (let i = words.length * 4; i < length; i++) out[i] = (i * 31 + seed) & 0xff;
  return out;
}

/** An image with random, zero and repeated regions. */
export function mixedImage(length: number, seed: number, block = 4096): Uint8Array {
  const img = pseudoRandom(length, seed);
  // zero out every 3rd block-sized region, repeat every 5th from the first
  for (let off = 0, n = 0; off < length; off += block, n++) {
    const end = Math.min(length, off + block);
    if (n % 3 === 1) img.fill(0, off, end);
    else if (n % 5 === 2 && end - off === block) img.copyWithin(off, 0, block);
  }
  return img;
}

/** Hex SHA-256. */
export function sha256Hex(data: Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/**
 * A CBT map with the seed's semantics: one byte per block holding the
 * changes number of its last write; changed since `n` ⇔ `map[i] > n`.
 */
export class FakeCbt implements CbtMapLike {
  readonly map: Uint8Array;
  info: { deviceCapacity: bigint; blockSize: number; generationId: string; changesNumber: number };

  constructor(capacity: bigint, blockSize: number, generationId = "gen-1") {
    const count = Number((capacity + BigInt(blockSize) - 1n) / BigInt(blockSize));
    this.map = new Uint8Array(count);
    this.info = { deviceCapacity: capacity, blockSize, generationId, changesNumber: 1 };
  }

  /** Record a write of [offset, offset+length) at the active number. */
  markWrite(offset: number, length: number): void {
    const bs = this.info.blockSize;
    const active = this.info.changesNumber + 1;
    for (let b = Math.floor(offset / bs); b * bs < offset + length; b++) {
      this.map[b] = Math.max(this.map[b], active);
    }
  }

  /** A snapshot take: the active number becomes current. */
  take(): void {
    this.info = { ...this.info, changesNumber: this.info.changesNumber + 1 };
  }

  changedExtents(since: number): ChangedExtent[] {
    const out: ChangedExtent[] = [];
    const bs = BigInt(this.info.blockSize);
    const cap = this.info.deviceCapacity;
    for (let i = 0; i < this.map.length; i++) {
      if (this.map[i] <= since) continue;
      const offset = BigInt(i) * bs;
      const end = offset + bs > cap ? cap : offset + bs;
      const last = out[out.length - 1];
      if (last && last.offset + last.length === offset) last.length += end - offset;
      else out.push({ offset, length: end - offset });
    }
    return out;
  }
}

/** Options of {@linkcode MemSource}. */
export interface MemSourceOptions {
  name?: string;
  id?: string;
  cbt?: CbtMapLike | null;
  /** Throw EIO when a read touches this byte offset. */
  failAt?: number;
}

/** A BackupSource over bytes in memory; counts bytes read. */
export class MemSource implements BackupSource {
  readonly identity: { name: string; id?: string };
  readonly capacity: bigint;
  readonly cbt: CbtMapLike | null;
  bytesRead = 0;
  readonly #data: Uint8Array;
  readonly #failAt: number | undefined;

  constructor(data: Uint8Array, options: MemSourceOptions = {}) {
    this.#data = data;
    this.capacity = BigInt(data.length);
    this.identity = { name: options.name ?? "mem0", ...(options.id ? { id: options.id } : {}) };
    this.cbt = options.cbt ?? null;
    this.#failAt = options.failAt;
  }

  read(offset: bigint, buf: Uint8Array): Promise<number> {
    const off = Number(offset);
    const n = Math.max(0, Math.min(buf.length, this.#data.length - off));
    if (this.#failAt !== undefined && this.#failAt >= off && this.#failAt < off + n) {
      const e = new Error("Input/output error (os error 5)");
      (e as Error & { code: string }).code = "EIO";
      return Promise.reject(e);
    }
    buf.set(this.#data.subarray(off, off + n));
    this.bytesRead += n;
    return Promise.resolve(n);
  }
}

/** Read a whole file. */
export function readAll(path: string): Promise<Uint8Array> {
  return Deno.readFile(path);
}

/** Recursively copy a directory. */
export async function copyDir(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    const a = join(from, e.name);
    const b = join(to, e.name);
    if (e.isDirectory) await copyDir(a, b);
    else await Deno.copyFile(a, b);
  }
}

/** All files under `dir`, relative paths, sorted. */
export async function listFiles(dir: string, prefix = ""): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(join(dir, prefix))) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...await listFiles(dir, rel));
    else out.push(rel);
  }
  return out.sort();
}

/** The pid of a process that has exited. */
export async function deadPid(): Promise<number> {
  const child = new Deno.Command("true").spawn();
  await child.status;
  return child.pid;
}

/** Text-like data: zstd leaves literal runs of it in plain repositories. */
export function textImage(size: number, seed: number): Uint8Array {
  const words = ["backup", "secret", "passwd", "root", "volume", "ledger", "invoice", "kernel"];
  let x = seed;
  let s = "";
  while (s.length < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    s += `${words[x % words.length]}-${(x >>> 8).toString(36)} `;
  }
  return new TextEncoder().encode(s.slice(0, size));
}

/** Every 24-byte window of `source` at a 1 KiB stride that appears in `bytes`. */
export function plaintextHits(bytes: Uint8Array, source: Uint8Array): number {
  const hay = new TextDecoder("latin1").decode(bytes);
  let hits = 0;
  for (let off = 0; off + 24 <= source.length; off += 1024) {
    const needle = new TextDecoder("latin1").decode(source.subarray(off, off + 24));
    if (hay.includes(needle)) hits++;
  }
  return hits;
}

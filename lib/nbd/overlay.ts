/**
 * A copy-on-write overlay over a read-only {@linkcode BlockSource}: writes go
 * to a local sparse file of the same size, never to the source; reads take
 * written blocks from that file and the rest from the source. So a machine
 * can run from a backup point (instant recovery) while the backup stays as
 * it was.
 *
 * Two files: `FILE` holds written blocks at their own offsets (a sparse file
 * of the device's size) and `FILE.map` says which blocks are written (sorted
 * block ranges, with the backup it belongs to and a SHA-256). The map is
 * replaced atomically on `FLUSH` (after the data file's `fsync`), so after a
 * crash the overlay holds every write acknowledged before the last flush;
 * later writes may be lost, as on any disk with a write cache. `FILE.lock`
 * keeps a second server off the same overlay.
 *
 * Writes that do not cover whole blocks read the rest of the block first
 * (from the overlay or the source), under one write lock. `TRIM` is accepted
 * and ignored (the protocol allows it).
 *
 * @module
 */

import { dirname } from "node:path";
import { createHash } from "node:crypto";
import {
  type BlockSource,
  BlockSourceError,
  type Extent,
  mergeExtents,
  piecesToBytes,
  type ReadPiece,
} from "./block_source.ts";
import { BlockRanges } from "./block_ranges.ts";
import { NbdErrno } from "./protocol.ts";

/** Magic of an overlay map file. */
export const OVERLAY_MAP_MAGIC = "BSNPOVLY";
/** Version of the overlay map format. */
export const OVERLAY_MAP_VERSION = 1;
const MAP_HEADER_SIZE = 96;
const MAX_MAP_RANGES = 1 << 26;

/** What an overlay map records besides its ranges. */
export interface OverlayIdentity {
  /** The backup (or other source) the overlay was made over. */
  sourceId: string;
  /** Size of the device in bytes. */
  size: number;
  /** Overlay block size in bytes. */
  blockSize: number;
}

/**
 * Encode an overlay map (little-endian): magic, version, block size, size,
 * range count, source id (48 bytes, zero-padded), 24 reserved bytes, then
 * (start, end) block pairs as u64, then the SHA-256 of everything before.
 */
export function encodeOverlayMap(id: OverlayIdentity, ranges: BlockRanges): Uint8Array {
  const pairs = ranges.toArray();
  const body = new Uint8Array(MAP_HEADER_SIZE + 16 * pairs.length);
  const v = new DataView(body.buffer);
  body.set(new TextEncoder().encode(OVERLAY_MAP_MAGIC), 0);
  v.setUint32(8, OVERLAY_MAP_VERSION, true);
  v.setUint32(12, id.blockSize, true);
  v.setBigUint64(16, BigInt(id.size), true);
  v.setBigUint64(24, BigInt(pairs.length), true);
  const sid = new TextEncoder().encode(id.sourceId);
  if (sid.length > 48) throw new RangeError(`source id ${id.sourceId} is longer than 48 bytes`);
  body.set(sid, 32);
  pairs.forEach(([s, e], i) => {
    v.setBigUint64(MAP_HEADER_SIZE + 16 * i, BigInt(s), true);
    v.setBigUint64(MAP_HEADER_SIZE + 16 * i + 8, BigInt(e), true);
  });
  const out = new Uint8Array(body.length + 32);
  out.set(body);
  out.set(createHash("sha256").update(body).digest(), body.length);
  return out;
}

/** Decode and check an overlay map; throws naming `path` on any inconsistency. */
export function decodeOverlayMap(
  bytes: Uint8Array,
  path: string,
): { identity: OverlayIdentity; ranges: BlockRanges } {
  const bad = (why: string): never => {
    throw new BlockSourceError(NbdErrno.EIO, `Overlay map ${path} is not valid: ${why}`);
  };
  if (bytes.length < MAP_HEADER_SIZE + 32) bad("too short");
  const body = bytes.subarray(0, bytes.length - 32);
  const sum = new Uint8Array(createHash("sha256").update(body).digest());
  if (!sum.every((b, i) => b === bytes[body.length + i])) bad("checksum mismatch");
  if (new TextDecoder().decode(bytes.subarray(0, 8)) !== OVERLAY_MAP_MAGIC) bad("bad magic");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  if (v.getUint32(8, true) !== OVERLAY_MAP_VERSION) bad(`version ${v.getUint32(8, true)}`);
  const blockSize = v.getUint32(12, true);
  const size = v.getBigUint64(16, true);
  const count = v.getBigUint64(24, true);
  if (size > BigInt(Number.MAX_SAFE_INTEGER)) bad("size out of range");
  if (count > BigInt(MAX_MAP_RANGES) || body.length !== MAP_HEADER_SIZE + 16 * Number(count)) {
    bad("range count does not match the file size");
  }
  const sidBytes = bytes.subarray(32, 80);
  const sidEnd = sidBytes.indexOf(0);
  const sourceId = new TextDecoder().decode(sidEnd < 0 ? sidBytes : sidBytes.subarray(0, sidEnd));
  const pairs: Array<[number, number]> = [];
  const blocks = Math.ceil(Number(size) / Math.max(1, blockSize));
  for (let i = 0; i < Number(count); i++) {
    const s = Number(v.getBigUint64(MAP_HEADER_SIZE + 16 * i, true));
    const e = Number(v.getBigUint64(MAP_HEADER_SIZE + 16 * i + 8, true));
    if (e > blocks) bad(`range [${s}, ${e}) beyond the device`);
    pairs.push([s, e]);
  }
  let ranges: BlockRanges;
  try {
    ranges = BlockRanges.fromArray(pairs);
  } catch (e) {
    return bad((e as Error).message);
  }
  return { identity: { sourceId, size: Number(size), blockSize }, ranges };
}

/** Options of {@linkcode OverlaySource.open}. */
export interface OverlayOptions {
  /** Identifies the source (the backup id); an overlay made over another source is refused. */
  sourceId: string;
  /** Block size of a new overlay (a power of two, 512 to 1 MiB). @default 4096 */
  blockSize?: number;
}

/** A simple promise-chain mutex. */
class Mutex {
  #tail: Promise<void> = Promise.resolve();
  run<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.#tail.then(fn);
    this.#tail = p.then(() => {}, () => {});
    return p;
  }
}

function pidAlive(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/**
 * A writable view of `base` whose writes land in a local sparse file.
 *
 * @example Run from a backup point with writes kept aside
 * ```ts ignore
 * import { Repository } from "../backup/mod.ts";
 * import { BackupPointSource } from "./backup_source.ts";
 * import { OverlaySource } from "./overlay.ts";
 * const repo = await Repository.open("/backup/repo");
 * const id = "20261124T031600123Z-0a1b2c3d";
 * const base = await BackupPointSource.open(repo, id);
 * const overlay = await OverlaySource.open(base, "/var/tmp/vm1.overlay", { sourceId: id });
 * await overlay.write(0, new Uint8Array(4096), false);
 * await overlay.close();
 * ```
 */
export class OverlaySource implements BlockSource {
  /** Same size as the base. */
  readonly size: number;
  /** Always true. */
  readonly writable = true;
  /** Path of the data file. */
  readonly path: string;
  /** Overlay block size. */
  readonly blockSize: number;
  readonly #base: BlockSource;
  readonly #identity: OverlayIdentity;
  readonly #file: Deno.FsFile;
  readonly #ranges: BlockRanges;
  // File offsets are set with seek, so every use of the file is serialised;
  // writes also hold it across their read-modify-write of partial blocks.
  readonly #io = new Mutex();
  readonly #writes = new Mutex();
  #dirty = false;
  #closed = false;

  private constructor(
    base: BlockSource,
    path: string,
    identity: OverlayIdentity,
    file: Deno.FsFile,
    ranges: BlockRanges,
  ) {
    this.#base = base;
    this.size = base.size;
    this.path = path;
    this.blockSize = identity.blockSize;
    this.#identity = identity;
    this.#file = file;
    this.#ranges = ranges;
  }

  /** Path of the map file of overlay `path`. */
  static mapPath(path: string): string {
    return `${path}.map`;
  }

  /** Path of the lock file of overlay `path`. */
  static lockPath(path: string): string {
    return `${path}.lock`;
  }

  /**
   * Open the overlay at `path` over `base`, creating it (sparse, the size of
   * `base`) when neither it nor its map exists. An existing overlay must have
   * been made over the same source, with the same size.
   */
  static async open(
    base: BlockSource,
    path: string,
    options: OverlayOptions,
  ): Promise<OverlaySource> {
    const blockSize = options.blockSize ?? 4096;
    if (!Number.isInteger(Math.log2(blockSize)) || blockSize < 512 || blockSize > 1 << 20) {
      throw new RangeError(`overlay block size ${blockSize} must be a power of two, 512 to 1 MiB`);
    }
    const mapPath = OverlaySource.mapPath(path);
    await takeLock(OverlaySource.lockPath(path));
    try {
      const [dataExists, mapBytes] = await Promise.all([
        Deno.stat(path).then(() => true, () => false),
        Deno.readFile(mapPath).catch((e) => {
          if (e instanceof Deno.errors.NotFound) return null;
          throw e;
        }),
      ]);
      let identity: OverlayIdentity;
      let ranges: BlockRanges;
      let file: Deno.FsFile;
      if (mapBytes === null) {
        if (dataExists) {
          throw new BlockSourceError(
            NbdErrno.EINVAL,
            `Overlay ${path} exists without its map ${mapPath}: not an overlay, or damaged; ` +
              "move it away to start a new overlay",
          );
        }
        identity = { sourceId: options.sourceId, size: base.size, blockSize };
        ranges = new BlockRanges();
        file = await Deno.open(path, { read: true, write: true, createNew: true, mode: 0o600 });
        await file.truncate(base.size);
        await file.sync();
        await writeAtomic(mapPath, encodeOverlayMap(identity, ranges));
      } else {
        ({ identity, ranges } = decodeOverlayMap(mapBytes, mapPath));
        if (identity.sourceId !== options.sourceId || identity.size !== base.size) {
          throw new BlockSourceError(
            NbdErrno.EINVAL,
            `Overlay ${path} belongs to ${identity.sourceId} (${identity.size} bytes), ` +
              `not ${options.sourceId} (${base.size} bytes)`,
          );
        }
        file = await Deno.open(path, { read: true, write: true });
        const st = await file.stat();
        if (st.size < base.size) await file.truncate(base.size);
      }
      return new OverlaySource(base, path, identity, file, ranges);
    } catch (e) {
      await Deno.remove(OverlaySource.lockPath(path)).catch(() => {});
      throw e;
    }
  }

  /** Blocks written so far. */
  get blocksWritten(): number {
    return this.#ranges.blockCount;
  }

  /** Whether block `b` (of {@linkcode OverlaySource.blockSize}) holds written data. */
  isWritten(b: number): boolean {
    return this.#ranges.has(b);
  }

  #readFile(offset: number, length: number): Promise<Uint8Array> {
    return this.#io.run(async () => {
      const out = new Uint8Array(length);
      await this.#file.seek(offset, Deno.SeekMode.Start);
      let got = 0;
      while (got < length) {
        const n = await this.#file.read(out.subarray(got));
        if (n === null) break; // past the end: zeros
        got += n;
      }
      return out;
    });
  }

  #writeFile(offset: number, data: Uint8Array): Promise<void> {
    return this.#io.run(async () => {
      await this.#file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < data.length) done += await this.#file.write(data.subarray(done));
    });
  }

  /** Byte range of blocks `[start, end)`, clipped to the device. */
  #bytes(start: number, end: number): [number, number] {
    return [start * this.blockSize, Math.min(end * this.blockSize, this.size)];
  }

  /** Written blocks from the file, the rest from the base. */
  async read(offset: number, length: number): Promise<ReadPiece[]> {
    if (length === 0) return [];
    const bs = this.blockSize;
    const end = offset + length;
    const runs = this.#ranges.split(Math.floor(offset / bs), Math.ceil(end / bs));
    const parts = await Promise.all(runs.map(async (run): Promise<ReadPiece[]> => {
      const [rs, re] = this.#bytes(run.start, run.end);
      const from = Math.max(rs, offset);
      const to = Math.min(re, end);
      if (!run.inSet) return this.#base.read(from, to - from);
      return [{ kind: "data", offset: from, data: await this.#readFile(from, to - from) }];
    }));
    return parts.flat();
  }

  /**
   * Write `data` at `offset` into the overlay. Partial blocks are completed
   * from their current content first. With `fua`, the write is durable when
   * this returns.
   */
  async write(offset: number, data: Uint8Array, fua: boolean): Promise<void> {
    if (this.#closed) throw new BlockSourceError(NbdErrno.ESHUTDOWN, "overlay is closed");
    if (data.length === 0) return;
    const bs = this.blockSize;
    const first = Math.floor(offset / bs);
    const last = Math.ceil((offset + data.length) / bs);
    await this.#writes.run(async () => {
      const [alignedStart, alignedEnd] = this.#bytes(first, last);
      let buf = data;
      if (alignedStart !== offset || alignedEnd !== offset + data.length) {
        buf = new Uint8Array(alignedEnd - alignedStart);
        // Only the first and last blocks can be partial: fetch their current bytes.
        const edges = new Set([first, last - 1]);
        for (const b of edges) {
          const [s, e] = this.#bytes(b, b + 1);
          const current = piecesToBytes(await this.read(s, e - s), s, e - s);
          buf.set(current, s - alignedStart);
        }
        buf.set(data, offset - alignedStart);
      }
      await this.#writeFile(alignedStart, buf);
      this.#ranges.add(first, last);
      this.#dirty = true;
    });
    if (fua) await this.flush();
  }

  /** `fsync` the data file, then replace the map if it changed. */
  flush(): Promise<void> {
    return this.#writes.run(async () => {
      if (!this.#dirty) return;
      this.#dirty = false;
      try {
        await this.#io.run(() => this.#file.syncData());
        await writeAtomic(
          OverlaySource.mapPath(this.path),
          encodeOverlayMap(this.#identity, this.#ranges),
        );
      } catch (e) {
        this.#dirty = true;
        throw e;
      }
    });
  }

  /** Accepted and ignored: the blocks keep their content. */
  trim(_offset: number, _length: number): Promise<void> {
    return Promise.resolve();
  }

  /** Written blocks are data; the rest is as the base reports. */
  async extents(offset: number, length: number): Promise<Extent[]> {
    const bs = this.blockSize;
    const end = offset + length;
    const out: Extent[] = [];
    for (const run of this.#ranges.split(Math.floor(offset / bs), Math.ceil(end / bs))) {
      const [rs, re] = this.#bytes(run.start, run.end);
      const from = Math.max(rs, offset);
      const to = Math.min(re, end);
      if (run.inSet) out.push({ length: to - from, hole: false, zero: false });
      else {
        // The base may answer for less than asked; the rest is reported as data.
        const got = await this.#base.extents(from, to - from);
        let covered = 0;
        for (const e of got) {
          const len = Math.min(e.length, to - from - covered);
          if (len <= 0) break;
          out.push({ ...e, length: len });
          covered += len;
        }
        if (covered < to - from) {
          out.push({ length: to - from - covered, hole: false, zero: false });
        }
      }
    }
    return mergeExtents(out);
  }

  /** Flush, close the file and release the lock (idempotent). */
  async close(): Promise<void> {
    if (this.#closed) return;
    try {
      await this.flush();
    } finally {
      this.#closed = true;
      await this.#io.run(() => Promise.resolve(this.#file.close()));
      await Deno.remove(OverlaySource.lockPath(this.path)).catch(() => {});
    }
  }
}

/** Create `path` holding our pid; a lock of a dead process is replaced. */
async function takeLock(path: string): Promise<void> {
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      await Deno.writeTextFile(path, `${Deno.pid}\n`, { createNew: true, mode: 0o600 });
      return;
    } catch (e) {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    }
    const pid = Number((await Deno.readTextFile(path).catch(() => "")).trim());
    if (Number.isSafeInteger(pid) && pid > 0 && pidAlive(pid)) {
      throw new BlockSourceError(
        NbdErrno.EINVAL,
        `Overlay lock ${path} is held by process ${pid}: another server uses this overlay`,
      );
    }
    await Deno.remove(path).catch(() => {});
  }
  throw new BlockSourceError(NbdErrno.EINVAL, `Cannot take the overlay lock ${path}`);
}

/** Write `data` to `path` (mode 0600) crash-safely: temp file, fsync, rename, fsync of the directory. */
async function writeAtomic(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.tmp-${crypto.randomUUID().slice(0, 8)}`;
  try {
    const f = await Deno.open(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      let done = 0;
      while (done < data.length) done += await f.write(data.subarray(done));
      await f.sync();
    } finally {
      f.close();
    }
    await Deno.rename(tmp, path);
    const dir = await Deno.open(dirname(path) || ".", { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

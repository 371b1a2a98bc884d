// A BlockSource over bytes in memory, for the protocol tests: zero runs
// (whole `grain`-sized pieces of zeros) read as zero pieces and report as
// holes; ranges listed in `bad` read as EIO; writable on request.

import {
  type BlockSource,
  type Extent,
  mergeExtents,
  type ReadPiece,
} from "../../../lib/nbd/block_source.ts";
import { NbdErrno } from "../../../lib/nbd/protocol.ts";

export class MemorySource implements BlockSource {
  readonly size: number;
  readonly writable: boolean;
  readonly bytes: Uint8Array;
  readonly grain: number;
  /** Byte ranges [start, end) that fail to read. */
  bad: Array<[number, number]> = [];
  /** Called before each read (tests hold reads here). */
  gate: (() => Promise<void>) | null = null;
  writes = 0;
  flushes = 0;

  constructor(bytes: Uint8Array, options: { writable?: boolean; grain?: number } = {}) {
    this.bytes = bytes;
    this.size = bytes.length;
    this.writable = options.writable ?? false;
    this.grain = options.grain ?? 4096;
  }

  #isZero(from: number, to: number): boolean {
    for (let i = from; i < to; i++) if (this.bytes[i] !== 0) return false;
    return true;
  }

  async read(offset: number, length: number): Promise<ReadPiece[]> {
    if (this.gate) await this.gate();
    const out: ReadPiece[] = [];
    const end = offset + length;
    for (let g = Math.floor(offset / this.grain) * this.grain; g < end; g += this.grain) {
      const from = Math.max(g, offset);
      const to = Math.min(g + this.grain, end);
      const bad = this.bad.find(([s, e]) => s < to && e > from);
      if (bad) {
        out.push({
          kind: "error",
          offset: from,
          length: to - from,
          errno: NbdErrno.EIO,
          message: `bad grain at ${g}`,
        });
      } else if (this.#isZero(g, Math.min(g + this.grain, this.size))) {
        out.push({ kind: "zero", offset: from, length: to - from });
      } else out.push({ kind: "data", offset: from, data: this.bytes.slice(from, to) });
    }
    return out;
  }

  extents(offset: number, length: number): Promise<Extent[]> {
    const out: Extent[] = [];
    const end = offset + length;
    for (let g = Math.floor(offset / this.grain) * this.grain; g < end; g += this.grain) {
      const from = Math.max(g, offset);
      const to = Math.min(g + this.grain, end);
      const z = this.#isZero(g, Math.min(g + this.grain, this.size));
      out.push({ length: to - from, hole: z, zero: z });
    }
    return Promise.resolve(mergeExtents(out));
  }

  write(offset: number, data: Uint8Array): Promise<void> {
    this.bytes.set(data, offset);
    this.writes++;
    return Promise.resolve();
  }

  flush(): Promise<void> {
    this.flushes++;
    return Promise.resolve();
  }

  trim(): Promise<void> {
    return Promise.resolve();
  }
}

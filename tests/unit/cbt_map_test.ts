// CbtMap against brute-force models, property-based (fast-check).
//
// Two models:
// - dense: a small Uint8Array, scanned byte by byte;
// - sparse: a background value plus a few (index, value) entries, over up to
//   2^32 - 1 blocks, stored as repeated shared pieces so memory stays small;
//   the model walks the sorted entries as segments.
import assert from "node:assert/strict";
import { fc } from "../_deps.ts";
import { type CbtInfo, CbtMap, type Extent } from "../../mod.ts";

const GEN = "6f1c2a9e-0d4b-4c55-9a43-1f2e3d4c5b6a";
const U32_MAX = 0xffff_ffff;

function info(blockCount: number, blockSize: number, deviceCapacity: bigint): CbtInfo {
  return { deviceCapacity, blockSize, blockCount, generationId: GEN, changesNumber: 0 };
}

/** Runs [start, end) of segments with value > since, coalesced, clipped to capacity. */
function modelExtents(
  segments: Iterable<[number, number, number]>,
  since: number,
  blockSize: number,
  capacity: bigint,
): Extent[] {
  const runs: [number, number][] = [];
  for (const [start, end, value] of segments) {
    if (value <= since || end <= start) continue;
    const last = runs[runs.length - 1];
    if (last && last[1] === start) last[1] = end;
    else runs.push([start, end]);
  }
  const out: Extent[] = [];
  const size = BigInt(blockSize);
  for (const [start, end] of runs) {
    const offset = BigInt(start) * size;
    let stop = BigInt(end) * size;
    if (stop > capacity) stop = capacity;
    if (stop > offset) out.push({ offset, length: stop - offset });
  }
  return out;
}

function* denseSegments(bytes: Uint8Array): Generator<[number, number, number]> {
  for (let i = 0; i < bytes.length; i++) yield [i, i + 1, bytes[i]];
}

function* sparseSegments(
  blockCount: number,
  background: number,
  entries: Map<number, number>,
): Generator<[number, number, number]> {
  const keys = [...entries.keys()].sort((a, b) => a - b);
  let at = 0;
  for (const k of keys) {
    if (k > at) yield [at, k, background];
    yield [k, k + 1, entries.get(k)!];
    at = k + 1;
  }
  if (at < blockCount) yield [at, blockCount, background];
}

/** Pieces of `pieceLength` sharing one background piece; entries get own copies. */
function sparsePieces(
  blockCount: number,
  pieceLength: number,
  background: number,
  entries: Map<number, number>,
): Uint8Array[] {
  const shared = new Uint8Array(pieceLength).fill(background);
  const pieces: Uint8Array[] = [];
  for (let at = 0; at < blockCount; at += pieceLength) {
    const len = Math.min(pieceLength, blockCount - at);
    pieces.push(len === pieceLength ? shared : shared.subarray(0, len));
  }
  for (const [index, value] of entries) {
    const k = Math.floor(index / pieceLength);
    if (pieces[k] === shared || pieces[k].buffer === shared.buffer) {
      pieces[k] = pieces[k].slice();
    }
    pieces[k][index % pieceLength] = value;
  }
  return pieces;
}

const blockSizeArb = fc.integer({ min: 9, max: 31 }).map((s) => 2 ** s);

function capacityArb(blockCount: number, blockSize: number): fc.Arbitrary<bigint> {
  const full = BigInt(blockCount) * BigInt(blockSize);
  if (blockCount === 0) return fc.constant(0n);
  const lastStart = full - BigInt(blockSize);
  return fc.oneof(
    fc.bigInt({ min: lastStart + 1n, max: full }), // the kernel's ceil(capacity / size)
    fc.constant(full),
    fc.bigInt({ min: 0n, max: full }), // any capacity the map covers
  );
}

const sinceArb = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0, 1, 127, 128, 254, 255),
);

function denseCase(): fc.Arbitrary<
  { bytes: Uint8Array; blockSize: number; capacity: bigint; since: number }
> {
  const valueArb = fc.oneof(
    fc.integer({ min: 0, max: 255 }),
    fc.constantFrom(0, 0, 0, 1, 2, 127, 128, 200, 255),
  );
  return fc.tuple(
    fc.oneof(
      fc.array(valueArb, { maxLength: 300, size: "max" }),
      fc.array(fc.constantFrom(0, 0, 0, 5, 200), {
        minLength: 65_000,
        maxLength: 70_000,
        size: "max",
      }), // crosses the 64 KiB piece size
    ),
    blockSizeArb,
    sinceArb,
  ).chain(([values, blockSize, since]) =>
    capacityArb(values.length, blockSize).map((capacity) => ({
      bytes: Uint8Array.from(values),
      blockSize,
      capacity,
      since,
    }))
  );
}

Deno.test("CbtMap.changedExtents() equals the dense model", () => {
  fc.assert(
    fc.property(denseCase(), ({ bytes, blockSize, capacity, since }) => {
      const map = new CbtMap(info(bytes.length, blockSize, capacity), bytes);
      const want = modelExtents(denseSegments(bytes), since, blockSize, capacity);
      assert.deepEqual(map.changedExtents(since), want);
      assert.deepEqual([...map.extents(since)], want);
      assert.equal(map.changedBytes(since), want.reduce((s, e) => s + e.length, 0n));
    }),
    { numRuns: 120 },
  );
});

Deno.test("CbtMap.changedBlocks() lists exactly the blocks with map[i] > since", () => {
  fc.assert(
    fc.property(denseCase(), ({ bytes, blockSize, capacity, since }) => {
      const map = new CbtMap(info(bytes.length, blockSize, capacity), bytes);
      const want: number[] = [];
      for (let i = 0; i < bytes.length; i++) if (bytes[i] > since) want.push(i);
      assert.deepEqual(map.changedBlocks(since), want);
      assert.equal(map.changedBlockCount(since), want.length);
    }),
    { numRuns: 120 },
  );
});

Deno.test("CbtMap gives the same answers for one array and for pieces of it", () => {
  fc.assert(
    fc.property(denseCase(), fc.integer({ min: 1, max: 64 }), (c, pieceLength) => {
      const pieces: Uint8Array[] = [];
      for (let at = 0; at < c.bytes.length; at += pieceLength) {
        pieces.push(c.bytes.slice(at, at + pieceLength));
      }
      const whole = new CbtMap(info(c.bytes.length, c.blockSize, c.capacity), c.bytes);
      const parts = new CbtMap(info(c.bytes.length, c.blockSize, c.capacity), pieces);
      assert.deepEqual(parts.changedExtents(c.since), whole.changedExtents(c.since));
      assert.deepEqual(parts.toBytes(), c.bytes);
    }),
    { numRuns: 80 },
  );
});

Deno.test("CbtMap.changedExtents() equals the sparse model up to 2^32 - 1 blocks", () => {
  const caseArb = fc.record({
    blockCount: fc.oneof(
      fc.integer({ min: 1, max: U32_MAX }),
      fc.constantFrom(U32_MAX, U32_MAX - 1, 2 ** 31, 2 ** 20 + 1),
    ),
    pieceLog: fc.integer({ min: 16, max: 20 }),
    background: fc.constantFrom(0, 0, 1, 3, 255),
    entries: fc.array(
      fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.integer({ min: 0, max: 255 })),
      {
        maxLength: 12,
      },
    ),
    blockSize: blockSizeArb,
    since: sinceArb,
  }).chain((c) => capacityArb(c.blockCount, c.blockSize).map((capacity) => ({ ...c, capacity })));
  fc.assert(
    fc.property(caseArb, (c) => {
      const entries = new Map<number, number>();
      for (const [where, value] of c.entries) {
        entries.set(Math.min(c.blockCount - 1, Math.floor(where * c.blockCount)), value);
      }
      // Also poke the very last block, where clipping happens.
      if (c.entries.length % 2 === 1) entries.set(c.blockCount - 1, (c.background + 1) % 256);
      const pieces = sparsePieces(c.blockCount, 2 ** c.pieceLog, c.background, entries);
      const map = new CbtMap(info(c.blockCount, c.blockSize, c.capacity), pieces);
      const want = modelExtents(
        sparseSegments(c.blockCount, c.background, entries),
        c.since,
        c.blockSize,
        c.capacity,
      );
      assert.deepEqual(map.changedExtents(c.since), want);
      assert.deepEqual([...map.extents(c.since)], want);
      assert.equal(map.changedBytes(c.since), want.reduce((s, e) => s + e.length, 0n));
    }),
    { numRuns: 60 },
  );
});

Deno.test("CbtMap of an empty map has no changes", () => {
  const map = new CbtMap(info(0, 65536, 0n), new Uint8Array(0));
  assert.deepEqual(map.changedExtents(0), []);
  assert.deepEqual(map.changedBlocks(0), []);
  assert.equal(map.changedBytes(0), 0n);
  assert.equal(new CbtMap(info(0, 512, 0n), []).changedBytes(0), 0n);
});

Deno.test("CbtMap of an all-dirty map is one extent of the whole capacity", () => {
  // 2^32 - 1 blocks of 2^31 bytes: a capacity near 2^63, far above 2^53.
  const blockCount = U32_MAX;
  const blockSize = 2 ** 31;
  const capacity = BigInt(blockCount) * BigInt(blockSize) - 12345n;
  const pieces = sparsePieces(blockCount, 2 ** 20, 7, new Map());
  const map = new CbtMap(info(blockCount, blockSize, capacity), pieces);
  assert.deepEqual(map.changedExtents(6), [{ offset: 0n, length: capacity }]);
  assert.equal(map.changedBytes(0), capacity);
  assert.deepEqual(map.changedExtents(7), []);
  assert.equal(map.changedBlockCount(6), blockCount);
  assert.ok(capacity > BigInt(Number.MAX_SAFE_INTEGER));
});

Deno.test("CbtMap clips the last partial block to the capacity", () => {
  const map = new CbtMap(info(3, 4096, 2n * 4096n + 1n), new Uint8Array([0, 1, 1]));
  assert.deepEqual(map.changedExtents(0), [{ offset: 4096n, length: 4097n }]);
  const beyond = new CbtMap(info(3, 4096, 4096n), new Uint8Array([1, 0, 1]));
  assert.deepEqual(beyond.changedExtents(0), [{ offset: 0n, length: 4096n }]);
});

Deno.test("CbtMap since 255 selects nothing and since 0 every written block", () => {
  const bytes = new Uint8Array([0, 255, 1, 0, 128]);
  const map = new CbtMap(info(5, 512, 2560n), bytes);
  assert.deepEqual(map.changedBlocks(255), []);
  assert.deepEqual(map.changedBlocks(0), [1, 2, 4]);
  assert.deepEqual(map.changedBlocks(127), [1, 4]);
  assert.deepEqual(map.changedBlocks(128), [1]);
});

Deno.test("CbtMap rejects bad info and bytes with TypeError or RangeError", () => {
  const bytes = new Uint8Array(4);
  assert.throws(() => new CbtMap(info(5, 512, 2560n), bytes), RangeError);
  assert.throws(() => new CbtMap(info(4, 500, 2000n), bytes), RangeError);
  assert.throws(() => new CbtMap(info(4, 512, 2049n), bytes), RangeError);
  assert.throws(() => new CbtMap(info(-1, 512, 0n), bytes), RangeError);
  assert.throws(() => new CbtMap(info(2 ** 32, 512, 0n), bytes), RangeError);
  assert.throws(
    () => new CbtMap({ ...info(4, 512, 2048n), deviceCapacity: 2048 as unknown as bigint }, bytes),
    TypeError,
  );
  assert.throws(
    () => new CbtMap({ ...info(4, 512, 2048n), changesNumber: 256 }, bytes),
    RangeError,
  );
  assert.throws(() => new CbtMap(info(4, 512, 2048n), "abcd" as unknown as Uint8Array), TypeError);
  assert.throws(
    () => new CbtMap(info(4, 512, 2048n), [new Uint8Array(1), new Uint8Array(3)]),
    RangeError,
  );
  const map = new CbtMap(info(4, 512, 2048n), bytes);
  assert.throws(() => map.changedExtents(256), RangeError);
  assert.throws(() => map.extents(256), RangeError); // at the call, not at the first next()
  assert.throws(() => map.changedExtents(-1), RangeError);
  assert.throws(() => map.changedExtents(1.5), RangeError);
  assert.throws(() => map.changedExtents("1" as unknown as number), TypeError);
  assert.throws(() => map.at(4), RangeError);
});

Deno.test("CbtMap.at() and toBytes() round-trip saved bytes", () => {
  const bytes = Uint8Array.from({ length: 70_000 }, (_, i) => i % 7);
  const map = new CbtMap(info(bytes.length, 512, BigInt(bytes.length) * 512n), bytes);
  assert.equal(map.at(69_999), 69_999 % 7);
  const copy = new CbtMap(map.info, map.toBytes());
  assert.deepEqual(copy.changedExtents(3), map.changedExtents(3));
  assert.equal(map.generationId, GEN);
  assert.equal(map.changesNumber, 0);
});

import assert from "node:assert/strict";
import { fc } from "../../_deps.ts";
import {
  chunksOfExtents,
  CorruptError,
  decodeIndex,
  encodeIndex,
  parseConfig,
  parseManifest,
} from "../../../lib/backup/mod.ts";
import { decodeChunkHeader, encodeChunkFile } from "../../../lib/backup/chunk.ts";
import { isAllZero, sha256 } from "../../../lib/backup/format.ts";

const seed = Date.now() % 2 ** 31;
console.log(`fast-check seed ${seed}`);

function sampleIndex(count: number, chunkSize = 4096): Uint8Array {
  const digests = new Uint8Array(count * 32);
  for (let i = 0; i < digests.length; i++) digests[i] = (i * 17) & 0xff;
  return encodeIndex(chunkSize, BigInt(count) * BigInt(chunkSize) - 5n, digests);
}

Deno.test("decodeIndex() round-trips encodeIndex()", () => {
  const bytes = sampleIndex(9);
  const idx = decodeIndex(bytes, "i");
  assert.equal(idx.chunkCount, 9);
  assert.equal(idx.capacity, 9n * 4096n - 5n);
  assert.equal(idx.digests.length, 9 * 32);
  const empty = encodeIndex(4096, 0n, new Uint8Array(0));
  assert.equal(decodeIndex(empty, "e").chunkCount, 0);
});

Deno.test("decodeIndex() throws CorruptError for truncation at every offset", () => {
  const bytes = sampleIndex(5);
  for (let n = 0; n < bytes.length; n++) {
    assert.throws(() => decodeIndex(bytes.subarray(0, n), "idx"), (e: unknown) => {
      assert.ok(e instanceof CorruptError, `n=${n}: ${e}`);
      assert.equal(e.path, "idx");
      return true;
    });
  }
  assert.throws(() => decodeIndex(new Uint8Array([...bytes, 0]), "idx"), CorruptError);
});

Deno.test("decodeIndex() rejects huge counts and capacities without allocating", () => {
  const bytes = sampleIndex(3);
  const v = new DataView(bytes.buffer);
  for (
    const [off, value] of [
      [24, 2n ** 64n - 1n],
      [24, 2n ** 40n],
      [16, 2n ** 64n - 1n],
      [16, 2n ** 62n],
    ] as const
  ) {
    const copy = bytes.slice();
    new DataView(copy.buffer).setBigUint64(off, value, true);
    assert.throws(() => decodeIndex(copy, "idx"), CorruptError);
  }
  for (const [off, value] of [[8, 2], [12, 0], [12, 4097], [12, 2 ** 31]] as const) {
    const copy = bytes.slice();
    new DataView(copy.buffer).setUint32(off, value, true);
    assert.throws(() => decodeIndex(copy, "idx"), CorruptError);
  }
  assert.equal(v.getUint32(8, true), 1);
});

Deno.test("decodeIndex() never throws anything but CorruptError on mutations (fast-check)", () => {
  const base = sampleIndex(6);
  fc.assert(
    fc.property(
      fc.array(fc.tuple(fc.nat(base.length + 8), fc.integer({ min: 0, max: 255 })), {
        maxLength: 6,
      }),
      fc.nat(base.length + 8),
      (edits, cut) => {
        const b = new Uint8Array(Math.max(base.length, cut));
        b.set(base);
        for (const [i, v] of edits) if (i < b.length) b[i] = v;
        const input = b.subarray(0, cut);
        try {
          decodeIndex(input, "f");
        } catch (e) {
          assert.ok(e instanceof CorruptError, String(e));
        }
      },
    ),
    { seed, numRuns: 2000 },
  );
});

Deno.test("parseManifest() and parseConfig() throw only CorruptError on mutated JSON (fast-check)", () => {
  const manifest = {
    format: "blksnap-backup",
    version: 1,
    id: "20261124T031600123Z-0a1b2c3d",
    device: { name: "/dev/vdb", id: null, capacity: "8192" },
    chunkSize: 4096,
    chunkCount: 2,
    cbt: { generationId: "g", changesNumber: 3, blockSize: 65536 },
    parent: null,
    mode: "full",
    reason: "r",
    startTime: "2026-11-24T03:16:00.123Z",
    endTime: "2026-11-24T03:16:01.000Z",
    stats: {
      bytesRead: 1,
      bytesStored: 1,
      bytesChanged: 1,
      chunksTotal: 2,
      chunksRead: 2,
      chunksNew: 1,
      chunksDeduplicated: 0,
      chunksReused: 0,
      chunksZero: 1,
    },
    state: "complete",
    indexSha256: "a".repeat(64),
    verification: { state: "none", time: null, badChunks: 0 },
  };
  const enc = (o: unknown) => new TextEncoder().encode(JSON.stringify(o));
  assert.equal(parseManifest(enc(manifest), "m").device.capacity, 8192n);
  const paths: string[][] = [];
  const walk = (o: Record<string, unknown>, p: string[]) => {
    for (const [k, v] of Object.entries(o)) {
      paths.push([...p, k]);
      if (v && typeof v === "object") walk(v as Record<string, unknown>, [...p, k]);
    }
  };
  walk(manifest, []);
  const weird = fc.oneof(
    fc.constant(undefined),
    fc.constant(null),
    fc.constant(-1),
    fc.constant(1e308),
    fc.constant(2 ** 53 + 2),
    fc.constant(0.5),
    fc.constant("NaN"),
    fc.constant(""),
    fc.constant("x".repeat(5000)),
    fc.constant([]),
    fc.constant({}),
    fc.boolean(),
    fc.string(),
    fc.integer(),
  );
  fc.assert(
    fc.property(fc.constantFrom(...paths), weird, (path, value) => {
      const o = structuredClone(manifest) as Record<string, unknown>;
      let cur = o;
      for (const k of path.slice(0, -1)) cur = cur[k] as Record<string, unknown>;
      cur[path.at(-1)!] = value;
      try {
        parseManifest(enc(o), "m");
      } catch (e) {
        assert.ok(e instanceof CorruptError, `${path.join(".")}=${value}: ${e}`);
      }
    }),
    { seed, numRuns: 1500 },
  );
  // NaN-like and duplicate keys in raw text
  for (
    const text of [
      '{"format":"blksnap-backup","version":NaN}',
      '{"version":1,"version":-1}',
      "",
      "\uFEFF{}",
    ]
  ) {
    assert.throws(() => parseManifest(new TextEncoder().encode(text), "m"), CorruptError);
    assert.throws(() => parseConfig(new TextEncoder().encode(text), "c"), CorruptError);
  }
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), (bytes) => {
      try {
        parseConfig(bytes, "c");
        parseManifest(bytes, "m");
      } catch (e) {
        assert.ok(e instanceof CorruptError, String(e));
      }
    }),
    { seed, numRuns: 500 },
  );
});

Deno.test("decodeChunkHeader() rejects truncation, bad lengths and bad magic", () => {
  const payload = new Uint8Array(100).fill(7);
  const file = encodeChunkFile(
    { encoding: 1, length: 4096, payloadLength: 100, payloadCrc32: 0 },
    payload,
  );
  assert.equal(decodeChunkHeader(file, 4096).length, 4096);
  for (let n = 0; n < file.length; n++) {
    assert.throws(() => decodeChunkHeader(file.subarray(0, n), 4096));
  }
  assert.throws(() => decodeChunkHeader(file, 2048), /length/);
  const bad = file.slice();
  bad[0] ^= 1;
  assert.throws(() => decodeChunkHeader(bad, 4096), /magic/);
});

Deno.test("chunksOfExtents() matches a byte-by-byte model (fast-check)", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 5000 }),
      fc.constantFrom(4096, 8192),
      fc.array(fc.tuple(fc.integer({ min: -10, max: 6000 }), fc.integer({ min: -5, max: 9000 }))),
      (cap, cs, raw) => {
        const extents = raw.map(([o, l]) => ({ offset: BigInt(o), length: BigInt(l) }));
        const got = chunksOfExtents(extents, BigInt(cap), cs);
        const want = new Set<number>();
        for (const [o, l] of raw) {
          if (o < 0 || l <= 0) continue;
          for (let b = o; b < Math.min(cap, o + l); b++) want.add(Math.floor(b / cs));
        }
        assert.deepEqual(got, [...want].sort((a, b) => a - b));
      },
    ),
    { seed, numRuns: 500 },
  );
  // multi-TB capacity, extent past 2^64
  const tb = 1n << 44n;
  assert.deepEqual(
    chunksOfExtents([{ offset: tb - 1n, length: 1n << 65n }], tb, 1 << 22),
    [Number(tb / (1n << 22n)) - 1],
  );
});

Deno.test("isAllZero() and sha256() agree with naive versions", () => {
  const buf = new Uint8Array(4099);
  assert.equal(isAllZero(buf), true);
  assert.equal(isAllZero(buf.subarray(3)), true);
  for (const i of [0, 7, 8, 4095, 4098]) {
    buf[i] = 1;
    assert.equal(isAllZero(buf), false);
    assert.equal(isAllZero(buf.subarray(1)), i === 0);
    buf[i] = 0;
  }
  assert.equal(
    Array.from(sha256(new TextEncoder().encode("abc"))).map((b) => b.toString(16).padStart(2, "0"))
      .join(""),
    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
  );
});

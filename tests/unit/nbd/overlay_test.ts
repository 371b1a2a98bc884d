// OverlaySource over a memory base: writes of any alignment read back over
// the base (a byte model), the base is never written, the overlay survives a
// reopen after a flush, belongs to one source, and refuses a second user.

import assert from "node:assert/strict";
import { join } from "node:path";
import { fc } from "../../_deps.ts";
import { piecesToBytes } from "../../../lib/nbd/block_source.ts";
import { decodeOverlayMap, OverlaySource } from "../../../lib/nbd/overlay.ts";
import { MemorySource } from "./_memory_source.ts";
import { pseudoRandom, tempDir } from "../backup/_helpers.ts";

const SIZE = 64 * 1024 + 1000; // not a whole number of overlay blocks

function base(): MemorySource {
  const img = pseudoRandom(SIZE, 5);
  img.fill(0, 8192, 16384);
  return new MemorySource(img);
}

async function readAll(o: OverlaySource): Promise<Uint8Array> {
  return piecesToBytes(await o.read(0, o.size), 0, o.size);
}

Deno.test("OverlaySource: writes of any offset and length read back over the base; the base is untouched", async () => {
  await using dir = await tempDir();
  let n = 0;
  await fc.assert(
    fc.asyncProperty(
      fc.array(fc.tuple(fc.integer({ min: 0, max: SIZE - 1 }), fc.integer({ min: 1, max: 9000 })), {
        maxLength: 12,
      }),
      async (writes) => {
        const b = base();
        const original = b.bytes.slice();
        const model = b.bytes.slice();
        const o = await OverlaySource.open(b, join(dir.path, `o${n++}`), { sourceId: "s" });
        try {
          for (const [off, len0] of writes) {
            const len = Math.min(len0, SIZE - off);
            const data = pseudoRandom(len, off + 1);
            await o.write(off, data, false);
            model.set(data, off);
          }
          assert.deepEqual(await readAll(o), model);
          assert.deepEqual(b.bytes, original, "the base is never written");
          assert.equal(b.writes, 0);
        } finally {
          await o.close();
        }
      },
    ),
    { numRuns: 40 },
  );
});

Deno.test("OverlaySource survives a reopen: flushed writes are there, block status sees them", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "vm.overlay");
  const b = base();
  const model = b.bytes.slice();
  const o = await OverlaySource.open(b, path, { sourceId: "backup-1" });
  const data = pseudoRandom(5000, 9);
  await o.write(10000, data, false);
  model.set(data, 10000);
  await o.flush();
  await o.write(SIZE - 10, new Uint8Array(10).fill(7), true); // FUA: durable at once
  model.fill(7, SIZE - 10);
  await o.close();
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
  assert.equal((await Deno.stat(OverlaySource.mapPath(path))).mode! & 0o777, 0o600);
  await assert.rejects(Deno.stat(OverlaySource.lockPath(path)), Deno.errors.NotFound);

  const again = await OverlaySource.open(b, path, { sourceId: "backup-1" });
  try {
    assert.deepEqual(await readAll(again), model);
    // Blocks 2 and 3 (8192..16383) were zeros in the base; 10000..14999 is now data.
    const ex = await again.extents(0, SIZE);
    assert.deepEqual(ex.map((e) => e.hole), [false]);
    assert.equal(again.blocksWritten, 3);
    // The data file is sparse: only written blocks take space.
    assert.ok((await Deno.stat(path)).blocks! * 512 < SIZE);
  } finally {
    await again.close();
  }
});

Deno.test("OverlaySource: unflushed writes are not in the map; a crash loses only them", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "o");
  const b = base();
  const o = await OverlaySource.open(b, path, { sourceId: "x" });
  await o.write(0, new Uint8Array(4096).fill(1), false);
  await o.flush();
  await o.write(4096, new Uint8Array(4096).fill(2), false);
  // "Crash": read the map as it is on disk now.
  const { ranges } = decodeOverlayMap(await Deno.readFile(OverlaySource.mapPath(path)), "map");
  assert.deepEqual(ranges.toArray(), [[0, 1]]);
  await o.close();
});

Deno.test("OverlaySource refuses another source, a second user, a damaged map, a data file without map", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "o");
  const b = base();
  const o = await OverlaySource.open(b, path, { sourceId: "backup-1" });
  await assert.rejects(
    OverlaySource.open(b, path, { sourceId: "backup-1" }),
    /held by process \d+: another server uses this overlay/,
  );
  await o.close();
  await assert.rejects(
    OverlaySource.open(b, path, { sourceId: "backup-2" }),
    /belongs to backup-1/,
  );
  await assert.rejects(
    OverlaySource.open(new MemorySource(new Uint8Array(4096)), path, { sourceId: "backup-1" }),
    /belongs to backup-1/,
  );
  const map = await Deno.readFile(OverlaySource.mapPath(path));
  map[40] ^= 1;
  await Deno.writeFile(OverlaySource.mapPath(path), map);
  await assert.rejects(OverlaySource.open(b, path, { sourceId: "backup-1" }), /checksum mismatch/);
  await Deno.remove(OverlaySource.mapPath(path));
  await assert.rejects(
    OverlaySource.open(b, path, { sourceId: "backup-1" }),
    /exists without its map/,
  );
  // A lock left by a dead process is taken over.
  const fresh = join(dir.path, "p");
  await Deno.writeTextFile(OverlaySource.lockPath(fresh), "999999999\n");
  await (await OverlaySource.open(b, fresh, { sourceId: "y" })).close();
});

Deno.test("OverlaySource: a write needing a base block that fails to read fails with EIO, and writes nothing", async () => {
  await using dir = await tempDir();
  const b = base();
  b.bad = [[4096, 8192]];
  const o = await OverlaySource.open(b, join(dir.path, "o"), { sourceId: "x" });
  try {
    await assert.rejects(o.write(5000, new Uint8Array(10), false), /bad grain/);
    assert.equal(o.blocksWritten, 0);
    await o.write(4096, new Uint8Array(4096).fill(3), false); // a whole block needs no read
    assert.deepEqual(
      piecesToBytes(await o.read(4096, 4096), 4096, 4096),
      new Uint8Array(4096).fill(3),
    );
  } finally {
    await o.close();
  }
});

Deno.test("OverlaySource: concurrent partial writes to one block both land (no lost read-modify-write)", async () => {
  await using dir = await tempDir();
  const b = base();
  const model = b.bytes.slice();
  const o = await OverlaySource.open(b, join(dir.path, "o"), { sourceId: "x" });
  try {
    // Eight 512-byte writes to the sectors of block 1, all at once, plus a trim (ignored).
    await Promise.all([
      ...Array.from({ length: 8 }, (_, i) => {
        const data = new Uint8Array(512).fill(i + 1);
        model.set(data, 4096 + i * 512);
        return o.write(4096 + i * 512, data, false);
      }),
      o.trim(0, 8192),
    ]);
    assert.deepEqual(await readAll(o), model);
  } finally {
    await o.close();
  }
});

import assert from "node:assert/strict";
import { fc } from "../../_deps.ts";
import { BlockRanges } from "../../../lib/nbd/block_ranges.ts";

Deno.test("BlockRanges matches a set of blocks under any sequence of adds, and stays canonical", () => {
  fc.assert(fc.property(
    fc.array(fc.tuple(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 20 }))),
    fc.integer({ min: 0, max: 220 }),
    fc.integer({ min: 0, max: 60 }),
    (adds, qs, qlen) => {
      const r = new BlockRanges();
      const model = new Set<number>();
      for (const [s, n] of adds) {
        r.add(s, s + n);
        for (let b = s; b < s + n; b++) model.add(b);
      }
      for (let b = 0; b < 230; b++) assert.equal(r.has(b), model.has(b), `block ${b}`);
      assert.equal(r.blockCount, model.size);
      const pairs = r.toArray();
      for (let i = 0; i < pairs.length; i++) {
        assert.ok(pairs[i][0] < pairs[i][1]);
        if (i > 0) assert.ok(pairs[i - 1][1] < pairs[i][0], "disjoint and not touching");
      }
      // split() covers the query exactly, alternating, each run true to the model.
      const runs = r.split(qs, qs + qlen);
      let at = qs;
      for (const run of runs) {
        assert.equal(run.start, at);
        assert.ok(run.end > run.start);
        for (let b = run.start; b < run.end; b++) assert.equal(model.has(b), run.inSet);
        at = run.end;
      }
      assert.equal(at, qlen === 0 ? qs : qs + qlen);
      for (let i = 1; i < runs.length; i++) assert.notEqual(runs[i].inSet, runs[i - 1].inSet);
      // Round trip through the array form.
      assert.deepEqual(BlockRanges.fromArray(pairs).toArray(), pairs);
    },
  ));
});

Deno.test("BlockRanges.fromArray() refuses unsorted, overlapping or empty ranges", () => {
  assert.throws(() => BlockRanges.fromArray([[5, 6], [1, 2]]), RangeError);
  assert.throws(() => BlockRanges.fromArray([[1, 5], [4, 6]]), RangeError);
  assert.throws(() => BlockRanges.fromArray([[1, 1]]), RangeError);
  assert.throws(() => BlockRanges.fromArray([[-1, 1]]), RangeError);
});

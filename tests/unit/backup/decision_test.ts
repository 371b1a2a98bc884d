import assert from "node:assert/strict";
import { decideBackupMode, type DecisionInput } from "../../../lib/backup/mod.ts";

const cursor = { generationId: "g1", changesNumber: 5, blockSize: 65536 };
const base: DecisionInput = {
  chunkSize: 1 << 20,
  capacity: 1n << 30n,
  cbt: { ...cursor, changesNumber: 7, deviceCapacity: 1n << 30n },
  parent: {
    id: "P",
    capacity: 1n << 30n,
    chunkSize: 1 << 20,
    cbt: cursor,
    verification: { state: "none" },
  },
  changedBytes: 4096n,
};

Deno.test("decideBackupMode() gives incremental only when everything matches", () => {
  const d = decideBackupMode(base);
  assert.equal(d.mode, "incremental");
  assert.match(d.reason, /5 -> 7/);
  // no changes since the parent and the same number: still incremental (nothing to read)
  const same = decideBackupMode({
    ...base,
    cbt: { ...base.cbt!, changesNumber: 5 },
    changedBytes: 0n,
  });
  assert.equal(same.mode, "incremental");
  assert.equal(
    decideBackupMode({ ...base, parent: { ...base.parent!, verification: { state: "ok" } } })
      .mode,
    "incremental",
  );
});

const cases: [string, Partial<DecisionInput>, RegExp][] = [
  ["forced", { forceFull: true }, /requested/],
  ["no parent", { parent: null }, /no previous backup/],
  ["parent problem", { parent: null, parentProblem: "parent X not found" }, /X not found/],
  ["no tracker", { cbt: null }, /no CBT tracker/],
  ["parent without cbt", { parent: { ...base.parent!, cbt: null } }, /without CBT/],
  ["generation changed", { cbt: { ...base.cbt!, generationId: "g2" } }, /generation changed/],
  ["wrap 255 -> 1 (new generation)", {
    parent: { ...base.parent!, cbt: { ...cursor, changesNumber: 255 } },
    cbt: { ...base.cbt!, generationId: "g2", changesNumber: 1 },
  }, /generation changed/],
  ["changes number went back", { cbt: { ...base.cbt!, changesNumber: 4 } }, /went back/],
  ["equal number with changes", {
    cbt: { ...base.cbt!, changesNumber: 5 },
    changedBytes: 65536n,
  }, /still 5/],
  ["block size changed", { cbt: { ...base.cbt!, blockSize: 131072 } }, /block size changed/],
  ["block size not power of two", {
    cbt: { ...base.cbt!, blockSize: 3000 },
    parent: { ...base.parent!, cbt: { ...cursor, blockSize: 3000 } },
  }, /not a power of two/],
  ["capacity changed", {
    capacity: 2n << 30n,
    cbt: { ...base.cbt!, deviceCapacity: 2n << 30n },
  }, /capacity changed/],
  ["tracker capacity differs", { cbt: { ...base.cbt!, deviceCapacity: 1n } }, /CBT map covers/],
  ["chunk size changed", { parent: { ...base.parent!, chunkSize: 1 << 22 } }, /chunk size/],
  ["parent failed verify", {
    parent: { ...base.parent!, verification: { state: "failed" } },
  }, /failed verification/],
  ["parent unverified when required", { requireVerifiedParent: true }, /not verified/],
  ["previous run failed", { failedRun: { id: "R", error: "EIO" } }, /previous run R failed/],
];

for (const [name, patch, reason] of cases) {
  Deno.test(`decideBackupMode() gives full when ${name}`, () => {
    const d = decideBackupMode({ ...base, ...patch });
    assert.equal(d.mode, "full");
    assert.match(d.reason, reason);
  });
}

Deno.test("after the 255 wrap a saved (G2, 255) cursor selects nothing in the map, and the decision is full", async () => {
  const { CbtMap } = await import("../../../mod.ts");
  // The first switch after the wrap: generation G2 (made by the wrap), number 1.
  const map = new CbtMap({
    deviceCapacity: 8n * 512n,
    blockSize: 512,
    blockCount: 8,
    generationId: "G2",
    changesNumber: 1,
  }, new Uint8Array([1, 0, 0, 0, 0, 0, 0, 0]));
  // A consumer comparing with "> saved" alone would miss block 0.
  assert.deepEqual(map.changedExtents(255), []);
  const d = decideBackupMode({
    ...base,
    capacity: map.info.deviceCapacity,
    cbt: { ...map.info, deviceCapacity: map.info.deviceCapacity },
    parent: {
      ...base.parent!,
      capacity: map.info.deviceCapacity,
      cbt: { generationId: "G2", changesNumber: 255, blockSize: 512 },
    },
    changedBytes: map.changedBytes(255),
  });
  assert.equal(d.mode, "full");
  assert.match(d.reason, /went back from 255 to 1/);
});

/**
 * A backup whose snapshot overflows its difference storage: no backup is
 * left, the snapshot is destroyed, and the next backup is full and correct.
 *
 * @module
 */

import assert from "node:assert/strict";
import { backupDevices, type DeviceBackupOutcome } from "../../../lib/backup/backup_devices.ts";
import { list, type Manifest, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { Snapshot } from "../../../mod.ts";
import { detachQuietly, loopDevice, randomBytes, sha256File, writeAt } from "./40-helpers.ts";

const CHUNK = 256 << 10;

function okResult(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

Deno.test("an overflowed snapshot leaves no backup, and the next backup is correct", async () => {
  await using loop = await loopDevice(64, true);
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: CHUNK });
  try {
    const first = okResult(
      (await backupDevices([loop.dev], repo, { diffStorage: loop.dir, limit: 256n << 20n }))
        .devices[0],
    );
    await writeAt(loop.dev, 1 << 20, randomBytes(1 << 20, 3));
    // Difference storage of 3 MiB (2 MiB header + 1 MiB of chunks); 24 MiB
    // rewritten under the snapshot cannot fit.
    const failed = await backupDevices([loop.dev], repo, {
      diffStorage: loop.dir,
      limit: 3n << 20n,
      onTaken: async () => {
        await writeAt(loop.dev, 8 << 20, randomBytes(24 << 20, 4));
      },
    });
    assert.equal(failed.ok, false);
    assert.ok(failed.devices[0].error !== undefined);
    assert.ok(
      failed.events.some((e) => e.type === "corrupted"),
      `events: ${failed.events.map((e) => e.type).join(", ")}`,
    );
    const listed = await list(repo);
    assert.deepEqual(listed.backups.map((b) => b.id), [first.id], "no backup from the overflow");
    assert.deepEqual(Snapshot.collect(), [], "the overflowed snapshot is destroyed");
    let imageHash = "";
    const next = await backupDevices([loop.dev], repo, {
      diffStorage: loop.dir,
      limit: 256n << 20n,
      beforeDestroy: async ([t]) => {
        imageHash = await sha256File(t.imagePath);
      },
    });
    const m = okResult(next.devices[0]);
    assert.equal(m.mode, "full");
    assert.match(m.reason, /previous run .* failed/);
    const target = `${loop.dir}/restored.img`;
    await restore(repo, m.id, target);
    assert.equal(await sha256File(target), imageHash);
    assert.equal(imageHash, await sha256File(loop.dev));
    assert.ok((await verify(repo, { deep: true })).ok);
  } finally {
    await detachQuietly(loop.dev);
  }
});

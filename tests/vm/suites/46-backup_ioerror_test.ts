/**
 * I/O errors under the original during a backup (reliability scenario 22):
 * a device-mapper device over a loop device is backed up, then its table is
 * switched to the error target while the next backup reads the snapshot
 * image. The backup fails, leaves no backup and no snapshot, the repository
 * still verifies, and once the device works again the next backup is full
 * and restores byte-equal.
 *
 * @module
 */

import assert from "node:assert/strict";
import { backupDevices, type DeviceBackupOutcome } from "../../../lib/backup/backup_devices.ts";
import { list, type Manifest, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { Snapshot } from "../../../mod.ts";
import { detachQuietly, loopDevice, randomBytes, sh, sha256File, writeAt } from "./40-helpers.ts";

const CHUNK = 256 << 10;
const NAME = "bk46";
const DM = `/dev/mapper/${NAME}`;

function okResult(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

/** Replace the live table of the dm device (suspend, load, resume). */
async function setTable(table: string): Promise<void> {
  await sh("dmsetup", "suspend", NAME);
  await sh("dmsetup", "load", NAME, "--table", table);
  await sh("dmsetup", "resume", NAME);
}

Deno.test("an I/O error under the original fails the backup cleanly, and the next one is full and correct", async () => {
  await using loop = await loopDevice(32, true);
  const sectors = (await sh("blockdev", "--getsz", loop.dev)).trim();
  const linear = `0 ${sectors} linear ${loop.dev} 0`;
  await sh("dmsetup", "create", NAME, "--table", linear);
  await sh("dmsetup", "mknodes");
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: CHUNK });
  const options = { diffStorage: loop.dir, limit: 128n << 20n };
  try {
    const first = okResult((await backupDevices([DM], repo, options)).devices[0]);
    assert.equal(first.mode, "full");

    // Changed blocks, so that the incremental has chunks to read.
    await writeAt(DM, 4 << 20, randomBytes(1 << 20, 46));
    const failed = await backupDevices([DM], repo, {
      ...options,
      onTaken: () => setTable(`0 ${sectors} error`),
    });
    assert.equal(failed.ok, false, "a backup of a device that fails its reads must fail");
    assert.match(String(failed.devices[0].error), /EIO|I\/O error|Input\/output/i);
    const listed = await list(repo);
    assert.deepEqual(listed.backups.map((b) => b.id), [first.id], "no backup from the failed run");
    assert.deepEqual(Snapshot.collect(), [], "the snapshot is destroyed");
    assert.ok((await verify(repo, { deep: true })).ok, "the repository still verifies");

    await setTable(linear);
    const next = okResult((await backupDevices([DM], repo, options)).devices[0]);
    assert.equal(next.mode, "full");
    assert.match(next.reason, /previous run .* failed/);
    const target = `${loop.dir}/restored.img`;
    await restore(repo, next.id, target);
    assert.equal(await sha256File(target), await sha256File(DM));
  } finally {
    await detachQuietly(DM);
    await sh("dmsetup", "remove", NAME).catch(() => {});
  }
});

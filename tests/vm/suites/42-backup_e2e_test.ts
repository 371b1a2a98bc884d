/*
# vm-tags: kernels, userland
*/
/**
 * End-to-end backups with the real module: full and incremental backups of
 * live devices through `backupDevices`, restored and compared with the
 * snapshot images they were read from.
 *
 * @module
 */

import assert from "node:assert/strict";
import {
  backupDevices,
  type DeviceBackupOutcome,
  type TakenDevice,
} from "../../../lib/backup/backup_devices.ts";
import {
  chunksOfExtents,
  type Manifest,
  Repository,
  restore,
  verify,
} from "../../../lib/backup/mod.ts";
import { Tracker } from "../../../mod.ts";
import { detachQuietly, loopDevice, randomBytes, sh, sha256File, writeAt } from "./40-helpers.ts";

const CHUNK = 256 << 10;

function okResult(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

Deno.test("full + 3 incrementals of a live ext4 device under a running writer each restore to the image of their snapshot", async () => {
  await using loop = await loopDevice(64);
  const mnt = `${loop.dir}/mnt`;
  await sh("mkfs.ext4", "-q", "-F", loop.dev);
  await Deno.mkdir(mnt);
  await sh("mount", loop.dev, mnt);
  await Deno.writeFile(`${mnt}/base.bin`, randomBytes(8 << 20, 7));
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: CHUNK });
  const writer = new Deno.Command("sh", {
    args: [
      "-c",
      // On TERM the loop ends after the dd in progress: once `writer.status`
      // resolves no file on the mount is open any more and umount succeeds.
      `trap 'exit 0' TERM; i=0; while :; do dd if=/dev/urandom of=${mnt}/w$((i % 12)) ` +
      `bs=64k count=$((i % 6 + 1)) conv=fsync 2>/dev/null; i=$((i + 1)); done`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const points: { manifest: Manifest; imageHash: string }[] = [];
  try {
    for (let k = 0; k < 4; k++) {
      let imageHash = "";
      const run = await backupDevices([loop.dev], repo, {
        diffStorage: loop.dir,
        limit: 256n << 20n,
        beforeDestroy: async ([t]: TakenDevice[]) => {
          imageHash = await sha256File(t.imagePath);
        },
      });
      assert.ok(run.ok, String(run.devices[0].error));
      points.push({ manifest: okResult(run.devices[0]), imageHash });
      await new Promise((r) => setTimeout(r, 300));
    }
  } finally {
    writer.kill();
    await writer.status;
    await sh("umount", mnt);
    await detachQuietly(loop.dev);
  }
  assert.deepEqual(points.map((p) => p.manifest.mode), [
    "full",
    "incremental",
    "incremental",
    "incremental",
  ]);
  for (let k = 1; k < 4; k++) {
    assert.equal(points[k].manifest.parent, points[k - 1].manifest.id);
    assert.ok(
      points[k].manifest.stats.chunksRead < points[k].manifest.stats.chunksTotal,
      `incremental ${k} read ${points[k].manifest.stats.chunksRead} chunks`,
    );
  }
  for (const [k, p] of points.entries()) {
    const target = `${loop.dir}/restore-${k}.img`;
    await restore(repo, p.manifest.id, target);
    assert.equal(await sha256File(target), p.imageHash, `point ${k} (${p.manifest.mode})`);
    await Deno.remove(target);
  }
  const report = await verify(repo, { deep: true });
  assert.ok(report.ok);
  assert.equal(report.backupsChecked, 4);
});

Deno.test("an incremental reads exactly the chunks of the changed CBT blocks", async () => {
  await using loop = await loopDevice(32, true);
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: CHUNK });
  const options = { diffStorage: loop.dir, limit: 128n << 20n };
  try {
    const full = okResult((await backupDevices([loop.dev], repo, options)).devices[0]);
    assert.equal(full.mode, "full");
    const writes: [number, number][] = [[100 << 10, 4096], [5 << 20, 1 << 20], [
      (20 << 20) + 123,
      10,
    ]];
    for (const [offset, length] of writes) {
      await writeAt(loop.dev, offset, randomBytes(length, offset));
    }
    let expected: number[] = [];
    let imageHash = "";
    const run = await backupDevices([loop.dev], repo, {
      ...options,
      onTaken: () => {
        using t = Tracker.open(loop.dev);
        const map = t.readCbtMap();
        expected = chunksOfExtents(
          map.changedExtents(full.cbt!.changesNumber),
          map.info.deviceCapacity,
          CHUNK,
        );
      },
      beforeDestroy: async ([t]) => {
        imageHash = await sha256File(t.imagePath);
      },
    });
    const incr = okResult(run.devices[0]);
    assert.equal(incr.mode, "incremental", run.devices[0].result?.decision.reason);
    // The CBT blocks (64 KiB) of the writes, rounded out to 256 KiB chunks.
    const written = new Set<number>();
    for (const [offset, length] of writes) {
      const first = Math.floor(offset / 65536) * 65536;
      const end = Math.ceil((offset + length) / 65536) * 65536;
      for (let c = Math.floor(first / CHUNK); c * CHUNK < end; c++) written.add(c);
    }
    assert.deepEqual(expected, [...written].sort((a, b) => a - b));
    assert.equal(incr.stats.chunksRead, expected.length);
    assert.ok(incr.stats.bytesRead <= expected.length * CHUNK);
    assert.equal(incr.stats.chunksReused, incr.stats.chunksTotal - expected.length);
    const target = `${loop.dir}/restored.img`;
    await restore(repo, incr.id, target);
    assert.equal(await sha256File(target), imageHash);
    assert.equal(await sha256File(target), await sha256File(loop.dev));
  } finally {
    await detachQuietly(loop.dev);
  }
});

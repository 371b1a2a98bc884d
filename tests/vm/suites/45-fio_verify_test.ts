/**
 * fio as an independent oracle (reliability scenario 23): fio lays out
 * verifiable blocks, a backup takes its snapshot, and fio then rewrites the
 * live device with read-back verification while the backup reads the image.
 * fio must find every block it wrote on the original (copy-on-write never
 * harms the original), and the restored full backup must verify as fio's
 * layout from before the take. An incremental afterwards restores to the
 * device's bytes.
 *
 * @module
 */

import assert from "node:assert/strict";
import { backupDevices, type DeviceBackupOutcome } from "../../../lib/backup/backup_devices.ts";
import { type Manifest, Repository, restore } from "../../../lib/backup/mod.ts";
import { detachQuietly, loopDevice, sha256File } from "./40-helpers.ts";

const MIB = 64;
const CHUNK = 256 << 10;

function okResult(o: DeviceBackupOutcome): Manifest {
  if (!o.result) throw o.error;
  return o.result.manifest;
}

/** fio options of the layout job: sequential 64 KiB blocks with crc32c headers. */
function layoutArgs(target: string): string[] {
  return [
    "--name=layout",
    `--filename=${target}`,
    "--rw=write",
    "--bs=64k",
    `--size=${MIB}M`,
    "--ioengine=psync",
    "--verify=crc32c",
    "--randseed=4242",
  ];
}

async function fio(...args: string[]): Promise<{ ok: boolean; out: string }> {
  const r = await new Deno.Command("fio", { args, stdout: "piped", stderr: "piped" }).output();
  const dec = new TextDecoder();
  return { ok: r.success, out: dec.decode(r.stdout) + dec.decode(r.stderr) };
}

Deno.test("fio verifies the original under copy-on-write and the restored image as its layout before the take", async () => {
  await using loop = await loopDevice(MIB);
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: CHUNK });
  try {
    const layout = await fio(...layoutArgs(loop.dev), "--direct=1", "--do_verify=0");
    assert.ok(layout.ok, layout.out);
    // The layout is itself verifiable before anything else happens.
    const before = await fio(...layoutArgs(loop.dev), "--direct=1", "--verify_only");
    assert.ok(before.ok, before.out);

    let churn: Promise<Deno.CommandOutput> | undefined;
    const full = await backupDevices([loop.dev], repo, {
      diffStorage: loop.dir,
      limit: 256n << 20n,
      onTaken: async () => {
        // 4 KiB random writes over a quarter of the device, each block read
        // back and checked by fio (verify_backlog), while the backup reads.
        churn = new Deno.Command("fio", {
          args: [
            "--name=churn",
            `--filename=${loop.dev}`,
            "--rw=randwrite",
            "--bs=4k",
            `--size=${MIB}M`,
            `--io_size=${MIB / 4}M`,
            "--direct=1",
            "--ioengine=psync",
            "--verify=crc32c",
            "--verify_backlog=256",
            "--randseed=77",
          ],
          stdout: "piped",
          stderr: "piped",
        }).output();
        await new Promise((r) => setTimeout(r, 500));
      },
    });
    const manifest = okResult(full.devices[0]);
    assert.equal(manifest.mode, "full");
    assert.ok(churn, "the writer was started after the take");
    const churned = await churn;
    const dec = new TextDecoder();
    assert.ok(
      churned.success,
      `fio found bad data on the original: ${dec.decode(churned.stdout)}${
        dec.decode(churned.stderr)
      }`,
    );

    const restored = `${loop.dir}/full.img`;
    await restore(repo, manifest.id, restored);
    const after = await fio(...layoutArgs(restored), "--verify_only");
    assert.ok(after.ok, `the restored full backup is not fio's layout: ${after.out}`);
    await Deno.remove(restored);

    const incremental = okResult(
      (await backupDevices([loop.dev], repo, { diffStorage: loop.dir, limit: 256n << 20n }))
        .devices[0],
    );
    // (fio's random writes touched nearly every chunk: what is checked here
    // is the chain, not the savings; 42-backup_e2e covers those.)
    assert.equal(incremental.mode, "incremental");
    assert.equal(incremental.parent, manifest.id);
    const restoredIncremental = `${loop.dir}/incremental.img`;
    await restore(repo, incremental.id, restoredIncremental);
    assert.equal(await sha256File(restoredIncremental), await sha256File(loop.dev));
  } finally {
    await detachQuietly(loop.dev);
  }
});

// vm-tags: userland
/**
 * Each script in examples/ run as operators run it (`deno run -A`), against
 * the real module and loop devices.
 *
 * @module
 */

import assert from "node:assert/strict";
import { list, Repository } from "../../../lib/backup/mod.ts";
import { backupDevices } from "../../../lib/backup/backup_devices.ts";
import { Snapshot, Tracker } from "../../../mod.ts";
import { fileSectors } from "../../../mod.ts";
import {
  denoRun,
  detachQuietly,
  loopDevice,
  randomBytes,
  sh,
  sha256File,
  writeAt,
} from "./40-helpers.ts";

Deno.test("examples/nightly_backup.ts: two devices, full then incremental, retention keeps the last", async () => {
  await using a = await loopDevice(16, true);
  await using b = await loopDevice(16, true);
  const repo = `${a.dir}/repo`;
  const args = ["--repo", repo, "--diff-storage", a.dir, "--limit", String(64 << 20)];
  const keep = [
    "--keep-last",
    "1",
    "--keep-daily",
    "0",
    "--keep-weekly",
    "0",
    "--keep-monthly",
    "0",
  ];
  try {
    const first = await denoRun("examples/nightly_backup.ts", ...args, ...keep, a.dev, b.dev);
    assert.equal(first.code, 0, first.stderr);
    assert.match(first.stdout, /created repository/);
    assert.equal(first.stdout.match(/: full /g)?.length, 2, first.stdout);
    await writeAt(a.dev, 4096, randomBytes(8192, 9));
    const second = await denoRun("examples/nightly_backup.ts", ...args, ...keep, a.dev, b.dev);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(second.stdout.match(/: incremental /g)?.length, 2, second.stdout);
    assert.match(second.stdout, /retention: kept 2, removed 2/);
    const { backups } = await list(await Repository.open(repo));
    assert.equal(backups.length, 2);
    const usage = await denoRun("examples/nightly_backup.ts", "--repo", repo);
    assert.equal(usage.code, 2);
  } finally {
    await detachQuietly(a.dev);
    await detachQuietly(b.dev);
  }
});

Deno.test("examples/full_backup_restore.ts: the restored file equals the snapshot", async () => {
  await using loop = await loopDevice(16, true);
  try {
    const target = `${loop.dir}/out.img`;
    const r = await denoRun(
      "examples/full_backup_restore.ts",
      "--repo",
      `${loop.dir}/repo`,
      "--diff-storage",
      loop.dir,
      loop.dev,
      target,
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /the restored file equals the device as it was at the snapshot/);
    assert.equal(await sha256File(target), await sha256File(loop.dev));
  } finally {
    await detachQuietly(loop.dev);
  }
});

Deno.test("examples/watch_overflow.ts: reads the image whole, or aborts cleanly on overflow", async () => {
  await using loop = await loopDevice(32, true);
  try {
    const quiet = await denoRun(
      "examples/watch_overflow.ts",
      "--diff-storage",
      loop.dir,
      "--limit",
      String(64 << 20),
      loop.dev,
    );
    assert.equal(quiet.code, 0, quiet.stderr);
    assert.match(
      quiet.stdout,
      new RegExp(`read ${32 << 20} bytes, sha256 ${await sha256File(loop.dev)}`),
    );
    // A slow reader (2 MiB/s) while 24 MiB of the device is rewritten: a
    // 3 MiB difference storage overflows.
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        "--cached-only",
        "examples/watch_overflow.ts",
        "--diff-storage",
        loop.dir,
        "--limit",
        String(3 << 20),
        "--rate",
        "2",
        loop.dev,
      ],
      cwd: "/project",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.getReader();
    let out = "";
    while (!out.includes("taken")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += new TextDecoder().decode(value);
    }
    assert.match(out, /snapshot .* taken/);
    await writeAt(loop.dev, 4 << 20, randomBytes(24 << 20, 5));
    reader.releaseLock();
    const [status, err] = await Promise.all([
      child.status,
      new Response(child.stderr).text(),
      child.stdout.cancel(),
    ]);
    assert.equal(status.code, 1, err);
    assert.match(err, /corrupted/);
    assert.match(err, /aborted after \d+ bytes: the snapshot overflowed/);
    assert.deepEqual(Snapshot.collect(), [], "the snapshot is destroyed");
  } finally {
    await detachQuietly(loop.dev);
  }
});

Deno.test("examples/mark_file_dirty.ts: the next incremental reads the file's blocks again", async () => {
  await using loop = await loopDevice(64);
  const mnt = `${loop.dir}/mnt`;
  await sh("mkfs.ext4", "-q", "-F", "-E", "lazy_itable_init=0,lazy_journal_init=0", loop.dev);
  await Deno.mkdir(mnt);
  await sh("mount", loop.dev, mnt);
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: 256 << 10 });
  const options = { diffStorage: loop.dir, limit: 128n << 20n };
  try {
    await Deno.writeFile(`${mnt}/data.bin`, randomBytes(4 << 20, 11));
    await sh("sync");
    const full = (await backupDevices([loop.dev], repo, options)).devices[0].result!;
    assert.equal(full.manifest.mode, "full");
    // nothing changed: a quiet incremental
    const quiet = (await backupDevices([loop.dev], repo, options)).devices[0].result!;
    assert.equal(quiet.manifest.mode, "incremental");
    const r = await denoRun("examples/mark_file_dirty.ts", `${mnt}/data.bin`);
    assert.equal(r.code, 0, r.stderr);
    assert.match(
      r.stdout,
      new RegExp(`${4 << 20} bytes in \\d+ extent\\(s\\) marked dirty on ${loop.dev}`),
    );
    // The next take's map must show every sector of the file as changed.
    const file = await fileSectors(`${mnt}/data.bin`);
    let uncovered = -1;
    const marked = (await backupDevices([loop.dev], repo, {
      ...options,
      onTaken: () => {
        using t = Tracker.open(loop.dev);
        const extents = t.readCbtMap().changedExtents(quiet.manifest.cbt!.changesNumber);
        uncovered = file.ranges.filter(({ sector, count }) =>
          !extents.some((e) =>
            e.offset <= sector * 512n && sector * 512n + count * 512n <= e.offset + e.length
          )
        ).length;
      },
    })).devices[0].result!;
    assert.equal(marked.manifest.mode, "incremental");
    assert.equal(uncovered, 0, `${uncovered} of ${file.ranges.length} file extents not marked`);
    assert.ok(
      marked.manifest.stats.bytesChanged >= 4 << 20,
      `changed ${marked.manifest.stats.bytesChanged}`,
    );
    assert.ok(marked.manifest.stats.chunksRead >= 16, `read ${marked.manifest.stats.chunksRead}`);
    const usage = await denoRun("examples/mark_file_dirty.ts");
    assert.equal(usage.code, 2);
  } finally {
    await sh("umount", mnt).catch(() => {});
    await detachQuietly(loop.dev);
  }
});

Deno.test("examples/changed_since.ts: prints the extents written since the latest backup", async () => {
  await using loop = await loopDevice(16, true);
  const repo = await Repository.init(`${loop.dir}/repo`, { chunkSize: 256 << 10 });
  try {
    await backupDevices([loop.dev], repo, { diffStorage: loop.dir, limit: 64n << 20n });
    await writeAt(loop.dev, 3 << 20, randomBytes(128 << 10, 12));
    const r = await denoRun(
      "examples/changed_since.ts",
      "--repo",
      repo.path,
      "--diff-storage",
      loop.dir,
      loop.dev,
      "latest",
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^changed offset=${3 << 20} length=${128 << 10}$`, "m"));
    assert.match(r.stdout, /131072 bytes in 1 extent\(s\) changed since .*reads 1 of 64 chunk/);
    assert.deepEqual(Snapshot.collect(), []);
  } finally {
    await detachQuietly(loop.dev);
  }
});

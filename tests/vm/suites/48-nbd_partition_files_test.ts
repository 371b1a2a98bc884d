// vm-tags: kernels, userland
/**
 * A backup of a whole, partitioned disk through the kernel's NBD driver:
 * `blksnap mount --partition 2` mounts the second partition with every file
 * as the disk held it; `blksnap restore --files --partition 2` copies chosen
 * files and a directory out as they were, refuses a path the backup does
 * not hold (copying nothing); a partition the disk does not have is refused;
 * after each, nothing is left (no nbd device connected, socket, server,
 * record).
 *
 * @module
 */

import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, FileSource, Repository } from "../../../lib/backup/mod.ts";
import { denoRun, loopDevice, sh } from "./40-helpers.ts";
import { assertNothingLeft, cli, populate, tree } from "./_nbd_helpers.ts";

Deno.test("a partitioned disk's backup: mount --partition, restore --files, refusals, nothing left", async () => {
  await using loop = await loopDevice(32);
  // Two partitions: ext4 on the second.
  const table = "label: dos\nstart=2048, size=8192, type=83\nstart=10240, type=83\n";
  const sf = new Deno.Command("sfdisk", {
    args: ["-q", "--no-reread", loop.dev],
    stdin: "piped",
    stdout: "null",
  }).spawn();
  const w = sf.stdin.getWriter();
  await w.write(new TextEncoder().encode(table));
  await w.close();
  assert.ok((await sf.status).success);
  await sh("losetup", "-d", loop.dev);
  await sh("losetup", "-P", loop.dev, loop.file);
  const part = `${loop.dev}p2`;
  for (let i = 0; i < 50 && !(await Deno.lstat(part).then(() => true, () => false)); i++) {
    await sh("mdev", "-s").catch(() => {});
    await new Promise((r) => setTimeout(r, 100));
  }
  await sh("mkfs.ext4", "-q", "-F", part);
  const mnt = join(loop.dir, "mnt");
  await Deno.mkdir(mnt);
  await sh("mount", part, mnt);
  await populate(mnt, 3);
  const held = await tree(mnt);
  await sh("umount", mnt);

  // The whole disk, quiet (nothing mounted): backed up as an image.
  const repoPath = join(loop.dir, "repo");
  const repo = await Repository.init(repoPath, { chunkSize: 1 << 20 });
  let id: string;
  {
    using source = await FileSource.open(loop.dev);
    id = (await backup(source, repo)).manifest.id;
  }

  const dir = join(loop.dir, "restore-mnt");
  await Deno.mkdir(dir);
  const out = JSON.parse(await cli("--json", "mount", "-r", repoPath, id, dir, "--partition", "2"));
  try {
    assert.match(out.mountedDevice, /^\/dev\/nbd\d+p2$/);
    assert.equal(out.fsType, "ext4");
    assert.deepEqual(await tree(dir), held);
  } finally {
    await cli("umount", dir);
  }
  await assertNothingLeft();

  // File-level restore: a file and a directory, as they were; nothing else.
  const target = join(loop.dir, "files");
  await cli(
    "restore",
    "-r",
    repoPath,
    id,
    target,
    "--partition",
    "2",
    "--files",
    "/etc/app/config",
    "data/deep",
  );
  const got = await tree(target);
  for (const p of ["etc/app/config", "data/deep", "data/deep/er", "data/deep/er/big"]) {
    assert.deepEqual(got.get(p), held.get(p), p);
  }
  assert.ok(!got.has("data/f1"), "only what was asked for");
  await assertNothingLeft();

  // A path the backup does not hold: refused, nothing copied, nothing left.
  const bad = await denoRun(
    "cli/main.ts",
    "restore",
    "-r",
    repoPath,
    id,
    join(loop.dir, "files2"),
    "--partition",
    "2",
    "--files",
    "/etc/app/config",
    "/no/such/file",
  );
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /not in backup .*\/no\/such\/file/);
  await assert.rejects(Deno.lstat(join(loop.dir, "files2/etc")), Deno.errors.NotFound);
  await assertNothingLeft();

  // A partition the disk does not have.
  const missing = await denoRun(
    "cli/main.ts",
    "mount",
    "-r",
    repoPath,
    id,
    dir,
    "--partition",
    "3",
  );
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no partition 3/);
  await assertNothingLeft();
});

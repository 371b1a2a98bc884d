// vm-tags: smoke
/**
 * Backup points mounted through the kernel's NBD driver, as an operator runs
 * it: live ext4 and XFS file systems are backed up from a snapshot (a writer
 * running), `blksnap mount` mounts each backup point read-only, and every
 * file (type, mode, size, content, link target) must equal what the snapshot
 * image held; `blksnap restore --files` copies chosen files out; `blksnap
 * umount` leaves no nbd device connected, no socket, no server process, no
 * record. A backup of a partitioned disk mounts the chosen partition.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import {
  backup,
  backupDevices,
  FileSource,
  type Manifest,
  Repository,
} from "../../../lib/backup/mod.ts";
import { denoRun, detachQuietly, loopDevice, randomBytes, sh } from "./40-helpers.ts";

const CLI = "cli/main.ts";
const RUN_DIR = "/run/blksnap";

/** One entry of a file tree: what a restore must reproduce. */
interface Entry {
  kind: string;
  mode: number;
  size: number;
  sha256?: string;
  link?: string;
}

/** Every file, directory and link under `root` (but lost+found), by relative path. */
async function tree(root: string): Promise<Map<string, Entry>> {
  const out = new Map<string, Entry>();
  const walk = async (rel: string): Promise<void> => {
    for await (const e of Deno.readDir(join(root, rel))) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (r === "lost+found") continue;
      const p = join(root, r);
      const st = await Deno.lstat(p);
      const entry: Entry = {
        kind: st.isSymlink ? "link" : st.isDirectory ? "dir" : st.isFile ? "file" : "other",
        mode: st.mode! & 0o7777,
        size: st.isFile ? st.size : 0,
      };
      if (st.isFile) {
        entry.sha256 = createHash("sha256").update(await Deno.readFile(p)).digest("hex");
      }
      if (st.isSymlink) entry.link = await Deno.readLink(p);
      out.set(r, entry);
      if (st.isDirectory) await walk(r);
    }
  };
  await walk("");
  return out;
}

/** A small tree of files of many sizes, a link, modes. */
async function populate(root: string, seed: number): Promise<void> {
  await Deno.mkdir(join(root, "etc/app"), { recursive: true });
  await Deno.mkdir(join(root, "data/deep/er"), { recursive: true });
  await Deno.writeTextFile(join(root, "etc/app/config"), `seed=${seed}\n`);
  await Deno.chmod(join(root, "etc/app/config"), 0o600);
  for (let i = 0; i < 24; i++) {
    await Deno.writeFile(join(root, `data/f${i}`), randomBytes(i * 9_000 + 1, seed + i));
  }
  await Deno.writeFile(join(root, "data/deep/er/big"), randomBytes(2 << 20, seed));
  await Deno.writeFile(join(root, "data/empty"), new Uint8Array(0));
  await Deno.symlink("../etc/app/config", join(root, "data/link"));
}

/** What must be gone after an umount: devices, sockets, records, servers, mounts. */
async function assertNothingLeft(): Promise<void> {
  for await (const e of Deno.readDir("/sys/block")) {
    if (!e.name.startsWith("nbd")) continue;
    const size = (await Deno.readTextFile(`/sys/block/${e.name}/size`)).trim();
    assert.equal(size, "0", `${e.name} still connected`);
    await assert.rejects(Deno.lstat(`/sys/block/${e.name}/pid`), Deno.errors.NotFound);
  }
  const left: string[] = [];
  for await (const e of Deno.readDir(RUN_DIR)) if (e.name !== "mounts") left.push(e.name);
  for await (const e of Deno.readDir(`${RUN_DIR}/mounts`)) left.push(`mounts/${e.name}`);
  assert.deepEqual(left, [], `left in ${RUN_DIR}`);
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`).catch(() => "");
    assert.ok(
      !(cmd.includes("\0serve\0") && cmd.includes(RUN_DIR)),
      `server ${e.name} left: ${cmd}`,
    );
  }
  assert.ok(!(await Deno.readTextFile("/proc/self/mountinfo")).includes("/dev/nbd"));
}

async function cli(...args: string[]): Promise<string> {
  const r = await denoRun(CLI, ...args);
  assert.equal(r.code, 0, `blksnap ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

/**
 * Back up the live file system on `dev` (mounted at `mnt`, a writer busy on
 * it) and return the backup with the tree its snapshot image held.
 */
async function backupLive(
  dev: string,
  mnt: string,
  repo: Repository,
  work: string,
  imageMount: string[],
): Promise<{ manifest: Manifest; held: Map<string, Entry> }> {
  const writer = new Deno.Command("sh", {
    args: [
      "-c",
      `trap 'exit 0' TERM; i=0; while :; do dd if=/dev/urandom of=${mnt}/w$((i % 8)) ` +
      `bs=64k count=$((i % 4 + 1)) conv=fsync 2>/dev/null; i=$((i + 1)); done`,
    ],
    stdout: "null",
    stderr: "null",
  }).spawn();
  let held = new Map<string, Entry>();
  try {
    await new Promise((r) => setTimeout(r, 500));
    const run = await backupDevices([dev], repo, {
      diffStorage: work,
      limit: 256n << 20n,
      beforeDestroy: async ([t]) => {
        const at = join(work, "image");
        await Deno.mkdir(at, { recursive: true });
        await sh("mount", ...imageMount, t.imagePath, at);
        try {
          held = await tree(at);
        } finally {
          await sh("umount", at);
        }
      },
    });
    if (!run.devices[0].result) throw run.devices[0].error;
    return { manifest: run.devices[0].result.manifest, held };
  } finally {
    writer.kill();
    await writer.status;
    await detachQuietly(dev);
  }
}

async function mountedTreeEquals(
  repo: string,
  id: string,
  held: Map<string, Entry>,
  work: string,
): Promise<{ fsType: string; options: string[] }> {
  const dir = join(work, "restore-mnt");
  await Deno.mkdir(dir, { recursive: true });
  const out = JSON.parse(await cli("--json", "mount", "-r", repo, id, dir));
  try {
    assert.match(out.nbdDevice, /^\/dev\/nbd\d+$/);
    const seen = await tree(dir);
    assert.ok(seen.size > 30, `${seen.size} entries`);
    assert.deepEqual(seen, held);
    // Read-only: nothing can be written there.
    await assert.rejects(Deno.writeTextFile(join(dir, "x"), "no"));
  } finally {
    await cli("umount", dir);
  }
  await assertNothingLeft();
  return out as { fsType: string; options: string[] };
}

Deno.test("a live ext4 backup point mounts (ro,noload) with every file as its snapshot image held; umount leaves nothing", async () => {
  await using loop = await loopDevice(48);
  const mnt = join(loop.dir, "mnt");
  await sh("mkfs.ext4", "-q", "-F", loop.dev);
  await Deno.mkdir(mnt);
  await sh("mount", loop.dev, mnt);
  const repoPath = join(loop.dir, "repo");
  try {
    await populate(mnt, 1);
    const repo = await Repository.init(repoPath, { chunkSize: 1 << 20 });
    const { manifest, held } = await backupLive(loop.dev, mnt, repo, loop.dir, [
      "-t",
      "ext4",
      "-o",
      "ro,noload",
    ]);
    assert.ok(held.has("data/deep/er/big") && held.get("data/link")?.link === "../etc/app/config");
    const m = await mountedTreeEquals(repoPath, manifest.id, held, loop.dir);
    assert.equal(m.fsType, "ext4");
    assert.deepEqual(m.options, ["ro", "noload"]);

    // File-level restore: chosen files and a directory, as they were.
    const target = join(loop.dir, "files");
    await cli(
      "restore",
      "-r",
      repoPath,
      manifest.id,
      target,
      "--files",
      "/etc/app/config",
      "data/deep",
    );
    const got = await tree(target);
    for (const p of ["etc/app/config", "data/deep", "data/deep/er", "data/deep/er/big"]) {
      assert.deepEqual(got.get(p), held.get(p), p);
    }
    assert.ok(!got.has("data/f1"), "only what was asked for");
    // A path that is not in the backup: refused, nothing copied, nothing left.
    const bad = await denoRun(
      CLI,
      "restore",
      "-r",
      repoPath,
      manifest.id,
      join(loop.dir, "files2"),
      "--files",
      "/etc/app/config",
      "/no/such/file",
    );
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /not in backup .*\/no\/such\/file/);
    await assert.rejects(Deno.lstat(join(loop.dir, "files2/etc")), Deno.errors.NotFound);
    await assertNothingLeft();
  } finally {
    await sh("umount", mnt).catch(() => {});
  }
});

Deno.test("a live XFS backup point mounts (ro,norecovery,nouuid) next to its mounted original", async () => {
  await using loop = await loopDevice(64);
  const mnt = join(loop.dir, "mnt");
  // mkfs.xfs refuses less than 300 MiB unless told it is a test (xfsprogs' fstests knob):
  // 64 MiB keeps the backup short under emulation.
  const mkfs = await new Deno.Command("mkfs.xfs", {
    args: ["-q", "-f", loop.dev],
    env: { TEST_DIR: "/tmp", TEST_DEV: loop.dev, QA_CHECK_FS: "1" },
    stderr: "piped",
  }).output();
  assert.ok(mkfs.success, new TextDecoder().decode(mkfs.stderr));
  await Deno.mkdir(mnt);
  await sh("mount", loop.dev, mnt);
  const repoPath = join(loop.dir, "repo");
  try {
    await populate(mnt, 2);
    const repo = await Repository.init(repoPath, { chunkSize: 1 << 20 });
    const { manifest, held } = await backupLive(loop.dev, mnt, repo, loop.dir, [
      "-t",
      "xfs",
      "-o",
      "ro,norecovery,nouuid",
    ]);
    // The original stays mounted: the same UUID is mounted twice.
    const m = await mountedTreeEquals(repoPath, manifest.id, held, loop.dir);
    assert.equal(m.fsType, "xfs");
    assert.deepEqual(m.options, ["ro", "norecovery", "nouuid"]);
  } finally {
    await sh("umount", mnt).catch(() => {});
  }
});

Deno.test("a backup of a partitioned disk mounts the chosen partition; a missing one is refused cleanly", async () => {
  await using loop = await loopDevice(32);
  // Two partitions: ext4 on the second.
  const table = "label: dos\nstart=2048, size=8192, type=83\nstart=10240, type=83\n";
  const sf = new Deno.Command("sfdisk", { args: ["-q", loop.dev], stdin: "piped", stdout: "null" })
    .spawn();
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
    assert.deepEqual(await tree(dir), held);
  } finally {
    await cli("umount", dir);
  }
  await assertNothingLeft();
  const missing = await denoRun(CLI, "mount", "-r", repoPath, id, dir, "--partition", "3");
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /no partition 3/);
  await assertNothingLeft();
});

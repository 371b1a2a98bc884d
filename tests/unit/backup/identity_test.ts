// deviceIdentity(): the stable id of a block device from /dev/disk/by-id or
// sysfs (a fake tree here, around a real loop device node), and a backup
// chain that survives a renamed device and the upgrade from path-keyed backups.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, deviceIdentity, Repository } from "../../../lib/backup/mod.ts";
import { FakeCbt, MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const DEV = "/dev/loop0";

async function sysDir(root: string): Promise<string> {
  const st = await Deno.stat(DEV);
  const lo = st.rdev! % 2 ** 32;
  const major = (lo >>> 8) & 0xfff;
  const minor = (lo & 0xff) | ((lo >>> 12) & 0xfff00);
  const dir = join(root, "dev/block", `${major}:${minor}`);
  await Deno.mkdir(dir, { recursive: true });
  return dir;
}

Deno.test({
  name: "deviceIdentity(): by-id link first (wwn before others), then sysfs ids, else the path",
  ignore: (await Deno.stat(DEV).catch(() => null))?.isBlockDevice !== true,
  fn: async () => {
    await using dir = await tempDir();
    const sys = join(dir.path, "sys");
    const byId = join(dir.path, "by-id");
    await Deno.mkdir(byId);
    const opts = { sysRoot: sys, byIdDir: byId };
    assert.deepEqual(await deviceIdentity(DEV, opts), { name: DEV });
    const node = await sysDir(sys);
    await Deno.mkdir(join(node, "loop"));
    await Deno.writeTextFile(join(node, "loop/backing_file"), "/var/lib/images/a.img\n");
    assert.deepEqual(await deviceIdentity(DEV, opts), {
      name: DEV,
      id: "loop-file-/var/lib/images/a.img",
    });
    await Deno.writeTextFile(join(node, "serial"), "SER 42\n");
    assert.equal((await deviceIdentity(DEV, opts)).id, "serial-SER_42");
    await Deno.writeTextFile(join(node, "wwid"), "naa.5000c500a1b2c3d4\n");
    assert.equal((await deviceIdentity(DEV, opts)).id, "wwid-naa.5000c500a1b2c3d4");
    await Deno.mkdir(join(node, "dm"));
    await Deno.writeTextFile(join(node, "dm/uuid"), "LVM-abc\n");
    assert.equal((await deviceIdentity(DEV, opts)).id, "dm-uuid-LVM-abc");
    await Deno.symlink(DEV, join(byId, "virtio-xyz"));
    await Deno.symlink(DEV, join(byId, "wwn-0x5000c500a1b2c3d4"));
    await Deno.symlink("/dev/null-nothing", join(byId, "ata-dangling"));
    assert.deepEqual(await deviceIdentity(DEV, opts), { name: DEV, id: "wwn-0x5000c500a1b2c3d4" });
    // A regular file is named by its absolute path.
    const img = join(dir.path, "disk.img");
    await Deno.writeFile(img, new Uint8Array(1));
    const cwd = Deno.cwd();
    Deno.chdir(dir.path);
    try {
      assert.deepEqual(await deviceIdentity("disk.img", opts), { name: img });
    } finally {
      Deno.chdir(cwd);
    }
  },
});

Deno.test("a renamed device keeps its chain by id; a path-keyed chain continues once an id is known", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
  const img = pseudoRandom(64 * 1024, 9);
  const cbt = new FakeCbt(BigInt(img.length), 4096);
  // Before ids were recorded: keyed by the path.
  const old = await backup(new MemSource(img, { name: "/dev/sdb", cbt }), repo);
  assert.equal(old.manifest.device.id, null);
  cbt.take();
  const first = await backup(new MemSource(img, { name: "/dev/sdb", id: "wwn-0x1", cbt }), repo);
  assert.equal(first.decision.mode, "incremental", first.decision.reason);
  assert.equal(first.manifest.parent, old.manifest.id);
  // The disk is /dev/sdc after a reboot: same id, same chain.
  cbt.take();
  const renamed = await backup(new MemSource(img, { name: "/dev/sdc", id: "wwn-0x1", cbt }), repo);
  assert.equal(renamed.decision.mode, "incremental", renamed.decision.reason);
  assert.equal(renamed.manifest.parent, first.manifest.id);
  assert.equal(renamed.manifest.device.name, "/dev/sdc");
  // Another disk now named /dev/sdb does not join the chain.
  const other = await backup(
    new MemSource(pseudoRandom(64 * 1024, 10), { name: "/dev/sdb", id: "wwn-0x2" }),
    repo,
  );
  assert.equal(other.decision.mode, "full");
});

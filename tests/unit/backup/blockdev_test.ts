// restore() to a real block device: a loop device over a temp file. Needs root and
// losetup; ignored otherwise. The loop device is always detached.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, devNumbers, RepoError, Repository, restore } from "../../../lib/backup/mod.ts";
import { MemSource, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

function canLoop(): boolean {
  try {
    if (Deno.uid() !== 0) return false;
    return new Deno.Command("losetup", { args: ["--version"], stdout: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

async function attach(file: string): Promise<string> {
  const out = await new Deno.Command("losetup", { args: ["--find", "--show", file] }).output();
  if (!out.success) throw new Error("losetup failed");
  return new TextDecoder().decode(out.stdout).trim();
}

async function detach(dev: string): Promise<void> {
  await new Deno.Command("losetup", { args: ["-d", dev] }).output();
}

Deno.test({
  name: "restore() writes a block device and refuses a small or mounted one",
  ignore: !canLoop(),
  fn: async () => {
    await using dir = await tempDir();
    const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4096 });
    const img = pseudoRandom(1024 * 1024, 5);
    img.fill(0, 100_000, 300_000);
    const { manifest } = await backup(new MemSource(img), repo);
    const backing = join(dir.path, "loop.img");
    await Deno.writeFile(backing, new Uint8Array(img.length).fill(0x77));
    const small = join(dir.path, "small.img");
    await Deno.writeFile(small, new Uint8Array(img.length / 2));
    let dev: string | null = null;
    let smallDev: string | null = null;
    try {
      dev = await attach(backing);
      smallDev = await attach(small);
      // O_DIRECT (the default for a device) on the calling thread; buffered on threads.
      for (const options of [{}, { direct: false, workers: 2 }]) {
        await Deno.writeFile(dev, new Uint8Array(img.length).fill(0x55));
        const r = await restore(repo, manifest.id, dev, options);
        assert.equal(r.targetKind, "block-device");
        assert.equal(r.bytesWritten, img.length, "zero chunks are written to a device");
        const f = await Deno.open(dev, { read: true });
        const back = new Uint8Array(img.length);
        let n = 0;
        while (n < back.length) n += (await f.read(back.subarray(n)))!;
        f.close();
        assert.equal(sha256Hex(back), sha256Hex(img), JSON.stringify(options));
      }

      await assert.rejects(
        restore(repo, manifest.id, smallDev),
        (e: unknown) =>
          e instanceof RepoError && e.code === "BAD_TARGET" && /smaller/.test(e.message),
      );
      const { major, minor } = devNumbers((await Deno.stat(dev)).rdev!);
      const fake = join(dir.path, "mountinfo");
      await Deno.writeTextFile(fake, `99 1 ${major}:${minor} / /mnt rw - ext4 ${dev} rw\n`);
      await assert.rejects(
        restore(repo, manifest.id, dev, { mountInfoPath: fake }),
        (e: unknown) =>
          e instanceof RepoError && e.code === "BAD_TARGET" && /mounted/.test(e.message),
      );
    } finally {
      if (dev) await detach(dev);
      if (smallDev) await detach(smallDev);
    }
  },
});

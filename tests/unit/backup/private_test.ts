// The repository is private whatever the umask: directories 0700, files
// 0600; a restored image too; verify warns about anything wider.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import { MemSource, pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;

async function modesUnder(dir: string): Promise<Map<string, number>> {
  const out = new Map<string, number>([[dir, (await Deno.stat(dir)).mode! & 0o777]]);
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) { for (const [k, v] of await modesUnder(p)) out.set(k, v); }
    else out.set(p, (await Deno.stat(p)).mode! & 0o777);
  }
  return out;
}

Deno.test("a repository is 0700/0600 under umask 000, and a restored new file is 0600", async () => {
  await using dir = await tempDir();
  const old = Deno.umask(0);
  try {
    const existing = join(dir.path, "repo");
    await Deno.mkdir(existing, { mode: 0o777 });
    await Deno.chmod(existing, 0o777);
    const repo = await Repository.init(existing, { chunkSize: 4 * KiB });
    const { manifest } = await backup(new MemSource(pseudoRandom(64 * KiB, 1)), repo);
    const target = join(dir.path, "restored.img");
    await restore(repo, manifest.id, target);
    assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600);
    const modes = await modesUnder(repo.path);
    assert.ok(modes.size > 10);
    for (const [path, mode] of modes) {
      const isDir = (await Deno.stat(path)).isDirectory;
      assert.equal(mode, isDir ? 0o700 : 0o600, `${path} is ${mode.toString(8)}`);
    }
    const report = await verify(repo);
    assert.deepEqual(report.widePermissions, []);
  } finally {
    Deno.umask(old);
  }
});

Deno.test("verify warns about every repository file or directory others can read", async () => {
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "repo"), { chunkSize: 4 * KiB });
  const { manifest } = await backup(new MemSource(pseudoRandom(16 * KiB, 2)), repo);
  await Deno.chmod(repo.path, 0o755);
  await Deno.chmod(repo.manifestPath(manifest.id), 0o644);
  const report = await verify(repo);
  assert.equal(report.ok, true, "wide modes are a warning, not damage");
  assert.deepEqual(
    report.widePermissions.sort(),
    [repo.manifestPath(manifest.id), repo.path].sort(),
  );
});

/**
 * Helpers of the NBD suites 47 and 48 (not a suite itself): file trees as a
 * restore must reproduce them, a tree of test files, the CLI, and the check
 * that nothing of a mount is left behind.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { denoRun, randomBytes } from "./40-helpers.ts";

const CLI = "cli/main.ts";
/** Where blksnap mount keeps sockets, logs and records. */
export const RUN_DIR = "/run/blksnap";

/** One entry of a file tree: what a restore must reproduce. */
export interface Entry {
  kind: string;
  mode: number;
  size: number;
  sha256?: string;
  link?: string;
}

/** Every file, directory and link under `root` (but lost+found), by relative path. */
export async function tree(root: string): Promise<Map<string, Entry>> {
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
export async function populate(root: string, seed: number): Promise<void> {
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
export async function assertNothingLeft(): Promise<void> {
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

/** Run the blksnap CLI; its stdout (the test fails on a non-zero exit). */
export async function cli(...args: string[]): Promise<string> {
  const r = await denoRun(CLI, ...args);
  assert.equal(r.code, 0, `blksnap ${args.join(" ")}: ${r.stderr}`);
  return r.stdout;
}

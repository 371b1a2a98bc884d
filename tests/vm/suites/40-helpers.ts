/**
 * Helpers of the in-VM suites 30 and 40-50 (root, module loaded): commands,
 * loop devices from temp files, device nodes, hashing. Not a suite itself (no `_test.ts`).
 *
 * @module
 */

import { createHash } from "node:crypto";

/** Run a command; its stdout, or throw with its stderr. */
export async function sh(cmd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} exited ${out.code}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text;
}

/** SHA-256 of a file or device, hex. */
export async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const block of file.readable) hash.update(block);
  return hash.digest("hex");
}

/** Pseudo-random bytes (xorshift), deterministic per seed. */
export function randomBytes(n: number, seed = 1): Uint8Array {
  const out = new Uint8Array(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** Write `data` at `offset` of a device and flush it to the device. */
export async function writeAt(device: string, offset: number, data: Uint8Array): Promise<void> {
  using f = await Deno.open(device, { write: true });
  await f.seek(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < data.length) done += await f.write(data.subarray(done));
  await f.sync();
}

/** A loop device over a temp file; detached and removed on dispose. */
export interface Loop extends AsyncDisposable {
  /** `/dev/loopN`. */
  dev: string;
  /** The backing file. */
  file: string;
  /** A scratch directory removed with it. */
  dir: string;
}

/** A loop device of `mib` MiB, filled with pseudo-random bytes when `fill`. */
export async function loopDevice(mib: number, fill = false): Promise<Loop> {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-vm-" });
  const file = `${dir}/disk.img`;
  if (fill) await Deno.writeFile(file, randomBytes(mib << 20, mib));
  else {
    using f = await Deno.open(file, { write: true, create: true });
    await f.truncate(mib << 20);
  }
  // busybox losetup: -f alone names the next free device
  const dev = (await sh("losetup", "-f")).trim();
  await sh("losetup", dev, file);
  return {
    dev,
    file,
    dir,
    async [Symbol.asyncDispose](): Promise<void> {
      await sh("umount", "-l", `${dir}/mnt`).catch(() => {});
      await sh("losetup", "-d", dev).catch(() => {});
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };
}

/**
 * Wait until `path` is a block device node (an image, or a node that a
 * udev-less guest's LVM, cryptsetup or mdadm makes after the command
 * returns); throw after `seconds`. Returns `path`.
 */
export async function waitForBlockDevice(path: string, seconds = 5): Promise<string> {
  for (let waited = 0; waited < seconds * 1000; waited += 50) {
    try {
      if ((await Deno.stat(path)).isBlockDevice) return path;
    } catch {
      // not there yet
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`${path} did not appear`);
}

/** Run `deno run -A --cached-only FILE args...`; exit code and output. */
export async function denoRun(
  file: string,
  ...args: string[]
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--cached-only", file, ...args],
    cwd: "/project",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

/** Detach the tracker of `dev` if attached (suites leave no trackers behind). */
export async function detachQuietly(dev: string): Promise<void> {
  const { Tracker } = await import("../../../mod.ts");
  try {
    using t = Tracker.open(dev);
    t.detach();
  } catch {
    // not attached, or gone
  }
}

/**
 * Mount a backup point read-only through the kernel's NBD driver, and take
 * it down again leaving nothing behind. Mounting starts an NBD server for the
 * backup in the background (a detached process on a Unix socket under the
 * run directory), loads `nbd`, connects a free `/dev/nbdN` with
 * `nbd-client -unix SOCKET -readonly`, and mounts the file system (or the
 * chosen partition) read-only without replaying its journal. A record in
 * `<run directory>/mounts/` ties the directory to the device, the socket and
 * the server's pid, for {@linkcode unmountBackupPoint}.
 *
 * Needs root, `modprobe`, `nbd-client` (Debian package `nbd-client`),
 * `mount` and `umount`.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { join, resolve } from "node:path";
import { type FsType, probeFilesystem, readHead, readOnlyMountOptions } from "./fs_probe.ts";

/** Where servers' sockets, logs and mount records live. */
export const DEFAULT_RUN_DIR = "/run/blksnap";

/** What {@linkcode mountBackupPoint} recorded about one mount. */
export interface MountRecord {
  /** The mount point (absolute). */
  dir: string;
  /** The repository (as given). */
  repo: string;
  /** The backup served. */
  backupId: string;
  /** The whole NBD device, e.g. `/dev/nbd0`. */
  nbdDevice: string;
  /** The partition mounted (1-based), or `null` for the whole device. */
  partition: number | null;
  /** The device mounted: the NBD device or its partition, e.g. `/dev/nbd0p1`. */
  mountedDevice: string;
  /** File system found, or `null` when the kernel was left to detect it. */
  fsType: FsType | null;
  /** The `mount -o` options used. */
  options: string[];
  /** The server's socket. */
  socket: string;
  /** The server's log file. */
  log: string;
  /** The server's process id. */
  pid: number;
  /** When it was mounted (ISO 8601 UTC). */
  time: string;
}

/** Options of {@linkcode mountBackupPoint}. */
export interface MountOptions {
  /**
   * The command that serves the backup point; `--socket PATH` is appended.
   * The `blksnap` CLI passes its own `serve -r REPO ID`.
   */
  serveCommand: string[];
  /** Environment variables added for the server (e.g. the passphrase of an encrypted repository). */
  serveEnv?: Record<string, string>;
  /** Mount this partition (1-based) of the backed-up device instead of the whole device. */
  partition?: number;
  /** Sockets, logs and mount records. @default "/run/blksnap" */
  runDir?: string;
  /** How long to wait for the device and its partition, in ms. @default 60000 */
  timeoutMs?: number;
  /**
   * How long to wait for the server to listen, in ms (it reads the backup's
   * index first: long for a large one on S3). A server that exits ends the
   * wait at once. @default 600000
   */
  serverTimeoutMs?: number;
  /** Progress lines for the operator. */
  log?: (message: string) => void;
}

/** Options of {@linkcode unmountBackupPoint}. */
export interface UnmountOptions {
  /** Where {@linkcode mountBackupPoint} kept its records. @default "/run/blksnap" */
  runDir?: string;
  /** How long to wait for the device and the server to go, in ms. @default 15000 */
  timeoutMs?: number;
}

/** A mount or unmount step failed; `message` says which and how to finish by hand. */
export class MountError extends Error {
  /** Always `"MountError"`. */
  override name = "MountError";
}

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function run(cmd: string, args: string[]): Promise<Ran> {
  try {
    const out = await new Deno.Command(cmd, {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new MountError(`${cmd} not found: install it (Debian: ${packageOf(cmd)})`);
    }
    throw e;
  }
}

function packageOf(cmd: string): string {
  return { "nbd-client": "nbd-client", modprobe: "kmod" }[cmd] ?? "util-linux";
}

async function runOk(cmd: string, args: string[], what: string): Promise<Ran> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new MountError(
      `${what} failed: ${cmd} ${args.join(" ")}: ${(r.stderr || r.stdout).trim()}`,
    );
  }
  return r;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch {
    return null;
  }
}

/** Whether `path` exists (without following a final symbolic link). */
export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** The mount points in `/proc/self/mountinfo` (field 5, octal escapes decoded). */
export function mountPoints(mountinfo: string): string[] {
  return mountinfo.split("\n").map((l) => l.split(" ")[4]).filter((p) => p !== undefined)
    .map((p) => p.replace(/\\([0-7]{3})/g, (_m, o) => String.fromCharCode(parseInt(o, 8))));
}

async function isMountPoint(dir: string): Promise<boolean> {
  return mountPoints((await readText("/proc/self/mountinfo")) ?? "").includes(dir);
}

function recordPath(runDir: string, dir: string): string {
  const key = createHash("sha256").update(dir).digest("hex").slice(0, 16);
  return join(runDir, "mounts", `${key}.json`);
}

/** Whether `pid` is alive and its command line mentions `socket` (it is our server). */
async function isServer(pid: number, socket: string): Promise<boolean> {
  const cmdline = await readText(`/proc/${pid}/cmdline`);
  return cmdline !== null && cmdline.split("\0").includes(socket);
}

async function waitFor(what: string, timeoutMs: number, ok: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await ok())) {
    if (Date.now() > deadline) throw new MountError(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

async function nbdSize(dev: string): Promise<number> {
  return Number((await readText(`/sys/block/${dev}/size`))?.trim() ?? "0");
}

/** `nbdN` devices with no connection. */
async function freeNbdDevices(): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir("/sys/block")) {
    if (!/^nbd\d+$/.test(e.name)) continue;
    if ((await nbdSize(e.name)) === 0 && !(await exists(`/sys/block/${e.name}/pid`))) {
      out.push(e.name);
    }
  }
  return out.sort((a, b) => Number(a.slice(3)) - Number(b.slice(3)));
}

async function stopServer(pid: number, socket: string, timeoutMs: number): Promise<void> {
  if (!(await isServer(pid, socket))) return;
  try {
    Deno.kill(pid, "SIGTERM");
  } catch {
    return;
  }
  const deadline = Date.now() + timeoutMs;
  while (await exists(`/proc/${pid}`)) {
    if (Date.now() > deadline) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch {
        // gone
      }
      break;
    }
    await sleep(50);
  }
}

async function disconnect(nbdDevice: string, timeoutMs: number): Promise<void> {
  await runOk("nbd-client", ["-d", nbdDevice], `disconnecting ${nbdDevice}`);
  const dev = nbdDevice.replace(/^\/dev\//, "");
  await waitFor(
    `${nbdDevice} to disconnect`,
    timeoutMs,
    async () => (await nbdSize(dev)) === 0 && !(await exists(`/sys/block/${dev}/pid`)),
  );
}

/**
 * Serve backup `backupId` of repository `repo` and mount it read-only on
 * `dir` (an existing directory that is not a mount point). On any failure,
 * everything done so far is undone and the error says what failed.
 *
 * @example
 * ```ts ignore
 * import { mountBackupPoint, unmountBackupPoint } from "./mount.ts";
 * const id = "20261124T031600123Z-0a1b2c3d";
 * const m = await mountBackupPoint("/backup/repo", id, "/mnt/restore", {
 *   serveCommand: ["blksnap", "serve", "-r", "/backup/repo", id],
 * });
 * console.log(m.mountedDevice, m.fsType);
 * await unmountBackupPoint("/mnt/restore");
 * ```
 */
export async function mountBackupPoint(
  repo: string,
  backupId: string,
  dir: string,
  options: MountOptions,
): Promise<MountRecord> {
  const runDir = options.runDir ?? DEFAULT_RUN_DIR;
  const timeoutMs = options.timeoutMs ?? 60_000;
  const say = options.log ?? (() => {});
  const partition = options.partition ?? null;
  if (partition !== null && (!Number.isInteger(partition) || partition < 1 || partition > 255)) {
    throw new RangeError(`partition ${partition} must be 1..255`);
  }
  const abs = resolve(dir);
  const st = await Deno.stat(abs).catch(() => null);
  if (!st?.isDirectory) throw new MountError(`${abs} is not a directory`);
  if (await isMountPoint(abs)) throw new MountError(`${abs} is already a mount point`);
  const record = recordPath(runDir, abs);
  if (await exists(record)) {
    throw new MountError(
      `${abs} has a blksnap mount record (${record}): run blksnap umount ${abs}`,
    );
  }
  await Deno.mkdir(join(runDir, "mounts"), { recursive: true, mode: 0o700 });

  const tag = `${backupId}-${crypto.randomUUID().slice(0, 8)}`;
  const socket = join(runDir, `${tag}.sock`);
  const logFile = join(runDir, `${tag}.log`);
  const undo: Array<() => Promise<void>> = [];
  try {
    // The server, detached: it outlives this process; its output goes to the log.
    const [cmd, ...args] = [...options.serveCommand, "--socket", socket];
    const child = new Deno.Command("sh", {
      args: ["-c", 'exec "$@" >>"$0" 2>&1', logFile, cmd, ...args],
      env: options.serveEnv,
      stdin: "null",
      stdout: "null",
      stderr: "null",
      detached: true,
    }).spawn();
    child.unref();
    const pid = child.pid;
    undo.push(async () => {
      await stopServer(pid, socket, 10_000);
      await Deno.remove(socket).catch(() => {});
      await Deno.remove(logFile).catch(() => {});
    });
    let exited = false;
    child.status.then(() => (exited = true));
    say(`starting the NBD server for ${backupId} (pid ${pid}, log ${logFile})`);
    await waitFor("the NBD server", options.serverTimeoutMs ?? 600_000, async () => {
      if (exited) {
        const tail = ((await readText(logFile)) ?? "").trim().split("\n").slice(-5).join("\n");
        throw new MountError(`the NBD server exited before listening:\n${tail}`);
      }
      try {
        (await Deno.connect({ transport: "unix", path: socket })).close();
        return true;
      } catch {
        return false;
      }
    });

    if (!(await exists("/sys/module/nbd"))) {
      await runOk("modprobe", ["nbd", "max_part=15"], "loading the nbd module");
      await waitFor("/sys/block/nbd0", 5000, () => exists("/sys/block/nbd0"));
    }
    if (partition !== null) {
      const maxPart = Number(
        (await readText("/sys/module/nbd/parameters/max_part"))?.trim() ?? "0",
      );
      if (maxPart < partition) {
        throw new MountError(
          `the nbd module has max_part=${maxPart}, too few for partition ${partition}: ` +
            "unload it (rmmod nbd) and load it with modprobe nbd max_part=15",
        );
      }
    }
    // Take the first free device; another mount may take one at the same time.
    let nbdDevice = "";
    for (const dev of await freeNbdDevices()) {
      const r = await run("nbd-client", ["-unix", socket, `/dev/${dev}`, "-readonly"]);
      if (r.code === 0) {
        nbdDevice = `/dev/${dev}`;
        break;
      }
      say(`${dev}: ${(r.stderr || r.stdout).trim()}`);
    }
    if (nbdDevice === "") throw new MountError("no free /dev/nbdN device could be connected");
    undo.push(() => disconnect(nbdDevice, 15_000).catch(() => {}));
    const nbdName = nbdDevice.slice(5);
    await waitFor(`${nbdDevice} to appear`, timeoutMs, async () => (await nbdSize(nbdName)) > 0);

    let mountedDevice = nbdDevice;
    if (partition !== null) {
      const part = `${nbdName}p${partition}`;
      // The kernel reads the partition table at the next open of the disk
      // (udev does that where it runs): open it, and ask again if need be.
      await readHead(nbdDevice);
      if (!(await exists(`/sys/block/${nbdName}/${part}`))) {
        await run("blockdev", ["--rereadpt", nbdDevice]);
      }
      try {
        await waitFor(
          `partition ${partition} of ${nbdDevice}`,
          10_000,
          () => exists(`/sys/block/${nbdName}/${part}`),
        );
      } catch {
        throw new MountError(
          `the backup has no partition ${partition} (no ${part} on ${nbdDevice})`,
        );
      }
      mountedDevice = `/dev/${part}`;
      await waitFor(mountedDevice, 5000, () => exists(mountedDevice));
    }
    const fsType = probeFilesystem(await readHead(mountedDevice));
    const opts = readOnlyMountOptions(fsType);
    await runOk(
      "mount",
      [...(fsType ? ["-t", fsType] : []), "-o", opts.join(","), mountedDevice, abs],
      `mounting ${mountedDevice} on ${abs}`,
    );
    undo.push(() => runOk("umount", [abs], `unmounting ${abs}`).then(() => {}));
    const rec: MountRecord = {
      dir: abs,
      repo,
      backupId,
      nbdDevice,
      partition,
      mountedDevice,
      fsType,
      options: opts,
      socket,
      log: logFile,
      pid,
      time: new Date().toISOString(),
    };
    await Deno.writeTextFile(`${record}.tmp`, JSON.stringify(rec, null, 2) + "\n", { mode: 0o600 });
    await Deno.rename(`${record}.tmp`, record);
    return rec;
  } catch (e) {
    for (const step of undo.reverse()) await step().catch(() => {});
    throw e;
  }
}

/** The records of every mounted backup point. */
export async function listMountedBackupPoints(runDir = DEFAULT_RUN_DIR): Promise<MountRecord[]> {
  const out: MountRecord[] = [];
  try {
    for await (const e of Deno.readDir(join(runDir, "mounts"))) {
      if (!e.name.endsWith(".json")) continue;
      const text = await readText(join(runDir, "mounts", e.name));
      try {
        if (text !== null) out.push(JSON.parse(text) as MountRecord);
      } catch {
        // a damaged record: skipped
      }
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  return out.sort((a, b) => a.dir.localeCompare(b.dir));
}

/**
 * Undo {@linkcode mountBackupPoint} for `dir`: unmount it, disconnect the NBD
 * device, stop the server, remove its socket, log and record. A file system
 * still in use is not unmounted (and nothing else is touched). Steps already
 * done (an unmount by hand, a dead server) are skipped.
 */
export async function unmountBackupPoint(
  dir: string,
  options: UnmountOptions = {},
): Promise<MountRecord> {
  const runDir = options.runDir ?? DEFAULT_RUN_DIR;
  const timeoutMs = options.timeoutMs ?? 15_000;
  const abs = resolve(dir);
  const path = recordPath(runDir, abs);
  const text = await readText(path);
  if (text === null) {
    throw new MountError(`${abs} is not a blksnap mount (no record in ${runDir}/mounts)`);
  }
  const rec = JSON.parse(text) as MountRecord;
  if (await isMountPoint(abs)) {
    const r = await run("umount", [abs]);
    if (r.code !== 0) {
      throw new MountError(
        `unmounting ${abs} failed: ${(r.stderr || r.stdout).trim()} ` +
          "(is a process using it? see fuser -vm " + abs + ")",
      );
    }
  }
  const dev = rec.nbdDevice.replace(/^\/dev\//, "");
  if ((await nbdSize(dev)) > 0 || (await exists(`/sys/block/${dev}/pid`))) {
    await disconnect(rec.nbdDevice, timeoutMs);
  }
  await stopServer(rec.pid, rec.socket, timeoutMs);
  await Deno.remove(rec.socket).catch(() => {});
  await Deno.remove(rec.log).catch(() => {});
  await Deno.remove(path);
  return rec;
}

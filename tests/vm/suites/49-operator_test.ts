// vm-tags: userland
/**
 * The operator's paths that need the kernel module, as the docs tell an
 * operator to take them:
 * - the `<!-- test: vm -->` command blocks of README.md and
 *   docs/operations.md, in order (`deno task install` for real into
 *   /usr/local, then `blksnap` from there), over loop devices named
 *   /dev/vdb, /dev/vdc and /dev/vdd;
 * - the installed blksnap-backup.service's ExecStart lines (systemd's
 *   expansion of /etc/blksnap/blksnap.env) and the shipped cron backup line
 *   (`/bin/sh -c` with cron's PATH);
 * - SIGTERM during a device backup: exit 143, the snapshot destroyed, the
 *   failed run recorded, the lock released, the next backup full;
 * - a device under another path keeps its chain (stable identity);
 * - `backup --image` of a mounted device warns.
 *
 * @module
 */

import assert from "node:assert/strict";
import { Snapshot } from "../../../mod.ts";
import { docBlocks, DOCS, oldestBackupId, substitute } from "../../_doc_blocks.ts";
import { execArgv, parseEnvironmentFile, unitValues } from "../../_systemd.ts";
import { type Ran, run as runHost } from "../../host/_host.ts";
import { signalMidRun } from "../../_signals.ts";
import { detachQuietly, loopDevice, randomBytes, sh, writeAt } from "./40-helpers.ts";

const ROOT = "/project";
const CRON_ENV = { PATH: "/usr/bin:/bin", SHELL: "/bin/sh", HOME: "/root" };

function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
  clearEnv = false,
): Promise<Ran> {
  return runHost(cmd, args, { env, cwd: ROOT, clearEnv });
}

/** The argv of `blksnap args...`: as installed, else from the tree. */
async function blksnapArgv(args: string[]): Promise<string[]> {
  const installed = await Deno.stat("/usr/local/bin/blksnap").then(() => true, () => false);
  return installed
    ? ["/usr/local/bin/blksnap", ...args]
    : [Deno.execPath(), "run", "-A", "--cached-only", `${ROOT}/cli/main.ts`, ...args];
}

async function blksnap(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  const [cmd, ...rest] = await blksnapArgv(args);
  return await run(cmd, rest, env);
}

/** Loop devices under the documents' names. */
async function docDevices(): Promise<AsyncDisposable> {
  const loops = [await loopDevice(32, true), await loopDevice(32, true), await loopDevice(32)];
  const names = ["/dev/vdb", "/dev/vdc", "/dev/vdd"];
  for (let i = 0; i < names.length; i++) {
    await Deno.remove(names[i]).catch(() => {});
    await Deno.symlink(loops[i].dev, names[i]);
  }
  return {
    async [Symbol.asyncDispose](): Promise<void> {
      for (const n of names) await Deno.remove(n).catch(() => {});
      for (const l of loops) {
        await detachQuietly(l.dev);
        await l[Symbol.asyncDispose]();
      }
    },
  };
}

Deno.test("the docs' vm command blocks run as written (install, first backup, nightly, restore)", async () => {
  await using _devices = await docDevices();
  const dir = await Deno.makeTempDir({ prefix: "blksnap-docs-" });
  try {
    await Deno.mkdir(`${dir}/tmp`);
    await Deno.mkdir(`${dir}/bin`);
    await Deno.writeTextFile(
      `${dir}/bin/blksnap`,
      `#!/bin/sh\nexec '${Deno.execPath()}' run -A --cached-only '${ROOT}/cli/main.ts' "$@"\n`,
    );
    await Deno.chmod(`${dir}/bin/blksnap`, 0o755);
    const env = {
      PATH: `/usr/local/bin:${dir}/bin:${Deno.env.get("PATH")}`,
      BLKSNAP_PASSWORD: "doc-test-passphrase",
    };
    let ran = 0;
    for (const doc of DOCS) {
      for (const b of (await docBlocks(doc)).filter((x) => x.where === "vm")) {
        const id = await oldestBackupId(`${dir}/repo`);
        const script = substitute(b.text, { dir, id, clone: ROOT });
        const r = await run("/bin/sh", ["-e", "-c", script], env);
        assert.equal(
          r.code,
          0,
          `${doc}:${b.line} (exit ${r.code}):\n${script}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`,
        );
        ran++;
      }
    }
    assert.ok(ran >= 5, `${ran} blocks`);
    assert.ok(await Deno.stat("/usr/local/bin/blksnap"), "deno task install made the command");
    // The restore to /dev/vdd wrote the newest backup of /dev/vdb.
    const vdb = await Deno.readFile("/dev/vdb");
    const vdd = await Deno.readFile("/dev/vdd");
    assert.deepEqual(vdd.subarray(0, vdb.length), vdb);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the installed systemd backup service and the cron backup line run as they would", async () => {
  await using _devices = await docDevices();
  const dir = await Deno.makeTempDir({ prefix: "blksnap-sched-" });
  try {
    const repo = `${dir}/repo`;
    assert.equal((await blksnap(["init", "-r", repo, "--no-encryption", "-c", "1M"])).code, 0);
    // The units are where deno task install put them (the first test ran it).
    const unitPath = "/etc/systemd/system/blksnap-backup.service";
    const unit = await Deno.readTextFile(unitPath);
    const envFile = await Deno.readTextFile("/etc/blksnap/blksnap.env");
    const env = parseEnvironmentFile(
      envFile.replace(/^BLKSNAP_REPO=.*$/m, `BLKSNAP_REPO=${repo}`)
        .replace(/^BLKSNAP_DIFF_STORAGE=.*$/m, `BLKSNAP_DIFF_STORAGE=${dir}`),
    );
    assert.equal(env.BLKSNAP_DEVICES, "/dev/vdb /dev/vdc");
    for (const line of unitValues(unit, "Service", "ExecStart")) {
      const [cmd, ...args] = execArgv(line, env);
      const r = await run(cmd, args, { ...CRON_ENV, ...env }, true);
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""], line);
    }
    const after = JSON.parse((await blksnap(["--json", "list", "-r", repo])).stdout);
    assert.deepEqual(after.backups.map((b: { device: { name: string } }) => b.device.name), [
      "/dev/vdb",
      "/dev/vdc",
    ]);
    // The cron line, as cron runs it: the second night is incremental.
    const cron = await Deno.readTextFile("/etc/cron.d/blksnap.example");
    const line = cron.split("\n").find((l) => l.startsWith("0 2 "))!;
    const command = line.split(/\s+/).slice(6).join(" ")
      .replaceAll("/backup/repo", repo).replaceAll("/var/tmp", dir);
    await writeAt("/dev/vdb", 1 << 20, randomBytes(4096, 5));
    const r = await run("/bin/sh", ["-c", command], CRON_ENV, true);
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""], command);
    // Its prune (--keep-daily 7 ...) keeps the newest backup of each device and day: the two
    // incrementals (every backup is logically full); its gc leaves them whole.
    const modes = JSON.parse((await blksnap(["--json", "list", "-r", repo])).stdout).backups
      .map((b: { mode: string }) => b.mode);
    assert.deepEqual(modes, ["incremental", "incremental"]);
    assert.equal((await blksnap(["verify", "-r", repo])).code, 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM during a device backup: exit 143, snapshot destroyed, failed run recorded, next full", async () => {
  // A zero device backs up quickly (no chunk is stored); then every byte changes, so the
  // interrupted incremental run has a parent and reads and stores the whole device.
  await using loop = await loopDevice(64);
  const repo = `${loop.dir}/repo`;
  try {
    assert.equal((await blksnap(["init", "-r", repo, "--no-encryption", "-c", "1M"])).code, 0);
    const backupArgs = ["backup", "-r", repo, "-d", loop.dev, "-s", loop.dir, "-l", "256M"];
    const first = await blksnap(["--json", ...backupArgs]);
    assert.equal(first.code, 0, first.stderr);
    await writeAt(loop.dev, 0, randomBytes(64 << 20, 7));
    const [cmd, ...args] = await blksnapArgv(backupArgs);
    const child = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).spawn();
    // Signalled once a chunk is stored: the snapshot is taken and being read.
    let snapshots = 0;
    const started = async () => {
      for await (const sub of Deno.readDir(`${repo}/chunks`)) {
        for await (const _ of Deno.readDir(`${repo}/chunks/${sub.name}`)) {
          snapshots = Snapshot.collect().length;
          return true;
        }
      }
      return false;
    };
    const { code, stderr: err, stopMs } = await signalMidRun(child, started, "SIGTERM", 300_000);
    assert.equal(snapshots, 1, "the run's snapshot existed");
    console.log(`# stopped ${stopMs.toFixed(0)} ms after SIGTERM (TCG)`);
    assert.equal(code, 143, err);
    assert.match(
      err.trim(),
      /^blksnap: error: interrupted by SIGTERM: .*the snapshot is destroyed$/,
    );
    assert.deepEqual(Snapshot.collect(), [], "the snapshot is destroyed");
    assert.equal(await Deno.stat(`${repo}/lock`).catch(() => null), null, "the lock is released");
    const runs = [...Deno.readDirSync(`${repo}/runs`)];
    assert.equal(runs.length, 1, "the failed run is recorded");
    const listed = JSON.parse((await blksnap(["--json", "list", "-r", repo])).stdout);
    assert.equal(listed.backups.length, 1, "the interrupted run left no backup");
    // The changes the interrupted run had taken from the tracker are not lost: full again.
    const next = JSON.parse((await blksnap(["--json", ...backupArgs])).stdout);
    assert.equal(next.backups[0].manifest.mode, "full");
    assert.match(next.backups[0].decision.reason, /failed: interrupted by SIGTERM/);
  } finally {
    await detachQuietly(loop.dev);
  }
});

Deno.test("a device under another name keeps its chain; --image of a mounted device warns", async () => {
  await using loop = await loopDevice(32, true);
  const repo = `${loop.dir}/repo`;
  const other = "/dev/sdx-renamed";
  try {
    assert.equal((await blksnap(["init", "-r", repo, "--no-encryption", "-c", "1M"])).code, 0);
    const first = await blksnap(["--json", "backup", "-r", repo, "-d", loop.dev, "-s", loop.dir]);
    assert.equal(first.code, 0, first.stderr);
    const id = JSON.parse(first.stdout).backups[0].manifest.device.id;
    assert.match(id, /^loop-file-/, "a loop device is known by its backing file");
    await writeAt(loop.dev, 2 << 20, randomBytes(4096, 9));
    await Deno.symlink(loop.dev, other);
    const renamed = JSON.parse(
      (await blksnap(["--json", "backup", "-r", repo, "-d", other, "-s", loop.dir])).stdout,
    ).backups[0];
    assert.equal(renamed.manifest.mode, "incremental", renamed.decision.reason);
    assert.equal(renamed.manifest.device.name, other);
    assert.equal(renamed.manifest.device.id, id);
    await sh("mkfs.ext4", "-q", "-F", loop.dev);
    await Deno.mkdir(`${loop.dir}/mnt`);
    await sh("mount", loop.dev, `${loop.dir}/mnt`);
    const live = await blksnap(["backup", "-r", repo, "--image", loop.dev]);
    assert.equal(live.code, 0, live.stderr);
    assert.match(live.stderr, /^warning: .* is mounted: --image reads it as it changes/m);
  } finally {
    await Deno.remove(other).catch(() => {});
    await sh("umount", `${loop.dir}/mnt`).catch(() => "");
    await detachQuietly(loop.dev);
  }
});

/**
 * The demonstration `deno task demo` runs inside the test VM (root, module
 * loaded): a full and an incremental backup of a live ext4 filesystem,
 * both restored and checked against the device as it was at each snapshot.
 *
 * 1. Make an ext4 filesystem on a 128 MiB ramdisk (`DEMO_DEVICE`, default
 *    `/dev/ram0`), mount it and write files.
 * 2. Full backup into a repository on tmpfs: the tracker is attached, one
 *    snapshot is taken, every chunk is read. While the snapshot exists its
 *    image is hashed and mounted read-only to record every file's hash.
 * 3. Change some files (rewrite part of one, append, delete, create), then
 *    an incremental backup: only the chunks the CBT map marks are read.
 * 4. Restore both backups to files; each must hash like its snapshot image,
 *    and mounted (loop, read-only) show exactly the files recorded.
 * 5. Print a report: bytes read and stored, time, full or incremental and why.
 *
 * Exit status: 0 every check passed; 1 a check failed or something is
 * missing (the module, snapshot support), said in one line; 2 bad usage
 * (it takes no arguments; `--help` prints the usage).
 *
 * @module
 */

import { createHash } from "node:crypto";
import { BlksnapError, moduleVersion, Snapshot } from "../mod.ts";
import {
  backupDevices,
  type Manifest,
  Repository,
  restore,
  type TakenDevice,
} from "../lib/backup/mod.ts";

const USAGE = "usage: demo.ts (no arguments; DEMO_DEVICE and DEMO_DIR in the environment)";
if (Deno.args.length > 0) {
  const help = Deno.args.length === 1 && ["--help", "-h"].includes(Deno.args[0]);
  (help ? console.log : console.error)(
    help
      ? `${USAGE}\n\nThe end-to-end demo (deno task demo runs it in the test VM): a full and an ` +
        "incremental backup of a live ext4 filesystem on DEMO_DEVICE (default /dev/ram0, 128 " +
        "MiB, overwritten), restored and checked. Work files go to DEMO_DIR (default " +
        "/tmp/blksnap-demo). Needs root and the loaded module."
      : USAGE,
  );
  Deno.exit(help ? 0 : 2);
}

const device = Deno.env.get("DEMO_DEVICE") ?? "/dev/ram0";
const work = Deno.env.get("DEMO_DIR") ?? "/tmp/blksnap-demo";
const mnt = `${work}/live`;

function fail(message: string): never {
  console.error(`demo: ${message}`);
  Deno.exit(1);
}

async function sh(cmd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    fail(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr).trim()}`);
  }
}

async function sha256File(path: string): Promise<string> {
  const hash = createHash("sha256");
  using file = await Deno.open(path);
  for await (const block of file.readable) hash.update(block);
  return hash.digest("hex");
}

/** Every regular file under `dir` (lost+found skipped) with its SHA-256. */
async function fileHashes(dir: string, prefix = ""): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const e of Deno.readDir(`${dir}/${prefix}`)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory && rel !== "lost+found") {
      for (const [k, v] of await fileHashes(dir, rel)) out.set(k, v);
    } else if (e.isFile) out.set(rel, await sha256File(`${dir}/${rel}`));
  }
  return out;
}

/** Mount `source` read-only (no journal replay), run `fn` on the mount point. */
async function withMount<T>(
  source: string,
  loop: boolean,
  fn: (dir: string) => Promise<T>,
): Promise<T> {
  const dir = await Deno.makeTempDir({ dir: work, prefix: "mnt-" });
  await sh("mount", "-t", "ext4", "-o", `ro,noload${loop ? ",loop" : ""}`, source, dir);
  try {
    return await fn(dir);
  } finally {
    await sh("umount", dir);
    await Deno.remove(dir);
  }
}

/** Deterministic pseudo-random bytes. */
function bytes(n: number, seed: number): Uint8Array {
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

const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;

// ---- preflight: say clearly what is missing
try {
  const v = moduleVersion();
  console.log(
    `demo: blksnap module ${v.major}.${v.minor}.${v.revision}.${v.build}, device ${device}`,
  );
} catch (e) {
  fail(`the blksnap module does not answer (${(e as Error).message}); load it first`);
}
await Deno.mkdir(work, { recursive: true });
try {
  Snapshot.create({ diffStorage: work, limit: 64n << 20n }).destroy();
} catch (e) {
  if (e instanceof BlksnapError && e.code === "EOPNOTSUPP") {
    fail("the loaded blksnap module does not do snapshots yet (EOPNOTSUPP): nothing to demo");
  }
  throw e;
}

// ---- 1. a live filesystem with files
// No lazy inode-table init: it would write in the background between the backups.
await sh(
  "mkfs.ext4",
  "-q",
  "-F",
  "-b",
  "4096",
  "-E",
  "lazy_itable_init=0,lazy_journal_init=0",
  device,
);
await Deno.mkdir(mnt, { recursive: true });
await sh("mount", device, mnt);
await Deno.mkdir(`${mnt}/docs`);
await Deno.writeFile(`${mnt}/db.bin`, bytes(16 << 20, 1));
for (let i = 0; i < 20; i++) {
  await Deno.writeFile(`${mnt}/docs/note-${i}.txt`, bytes(4096 + i * 1000, 100 + i));
}
await Deno.writeTextFile(`${mnt}/app.log`, "started\n");
await sh("sync");

const repoDir = `${work}/repo`;
await Deno.remove(repoDir, { recursive: true }).catch(() => {});
const repo = await Repository.init(repoDir, { chunkSize: 1 << 20 });

interface Point {
  manifest: Manifest;
  reason: string;
  imageHash: string;
  files: Map<string, string>;
  ms: number;
}

async function backupPoint(label: string): Promise<Point> {
  let imageHash = "";
  let files = new Map<string, string>();
  const started = performance.now();
  const run = await backupDevices([device], repo, {
    diffStorage: work,
    limit: 256n << 20n,
    // The snapshot still exists: record the device as it was at the take.
    beforeDestroy: async ([t]: TakenDevice[]) => {
      imageHash = await sha256File(t.imagePath);
      files = await withMount(t.imagePath, false, (dir) => fileHashes(dir));
    },
  });
  const checkMs = performance.now() - started;
  const [d] = run.devices;
  if (!d.result) fail(`${label} backup failed: ${(d.error as Error)?.message ?? d.error}`);
  const { manifest, decision } = d.result;
  const ms = Date.parse(manifest.endTime) - Date.parse(manifest.startTime);
  console.log(
    `demo: ${label}: ${manifest.mode} backup ${manifest.id} in ${(ms / 1000).toFixed(1)} s ` +
      `(run with snapshot checks: ${(checkMs / 1000).toFixed(1)} s)`,
  );
  return { manifest, reason: decision.reason, imageHash, files, ms };
}

// ---- 2. full backup
const full = await backupPoint("first");

// ---- 3. change some files, then an incremental backup
{
  using db = await Deno.open(`${mnt}/db.bin`, { write: true });
  await db.seek(5 << 20, Deno.SeekMode.Start);
  await db.write(bytes(1 << 20, 2)); // rewrite 1 MiB in the middle
}
await Deno.writeTextFile(`${mnt}/app.log`, "backup 1 done\n", { append: true });
await Deno.remove(`${mnt}/docs/note-3.txt`);
await Deno.writeFile(`${mnt}/docs/new.bin`, bytes(2 << 20, 3));
await sh("sync");
const incr = await backupPoint("second");

// ---- 4. restore both and check them
await sh("umount", mnt);
let ok = true;
const checks: string[] = [];
for (const [label, p] of [["full", full], ["incremental", incr]] as const) {
  const target = `${work}/restore-${label}.img`;
  await Deno.remove(target).catch(() => {});
  const started = performance.now();
  await restore(repo, p.manifest.id, target);
  const restoreMs = performance.now() - started;
  const sameImage = (await sha256File(target)) === p.imageHash;
  const restored = await withMount(target, true, (dir) => fileHashes(dir));
  const sameFiles = restored.size === p.files.size &&
    [...p.files].every(([k, v]) => restored.get(k) === v);
  ok &&= sameImage && sameFiles && p.files.size > 0;
  checks.push(
    `${label.padEnd(11)} restored in ${(restoreMs / 1000).toFixed(1)} s: image ` +
      `${sameImage ? "equals" : "DIFFERS FROM"} the snapshot (sha256 ${
        p.imageHash.slice(0, 16)
      }...), ` +
      `${restored.size} files ${sameFiles ? "equal" : "DIFFER from"} those seen in the snapshot`,
  );
}
if (incr.manifest.mode !== "incremental") {
  ok = false;
  checks.push(`the second backup was expected to be incremental: ${incr.reason}`);
}

// ---- 5. report
console.log("\nblksnap demo report");
console.log(
  `device ${device}, ${mib(Number(full.manifest.device.capacity))}, ext4, live (mounted)`,
);
console.log(`repository ${repoDir}, chunks of ${mib(repo.config.chunkSize)}, zstd`);
for (const [label, p] of [["full", full], ["incremental", incr]] as const) {
  const s = p.manifest.stats;
  console.log(
    `${label.padEnd(11)} ${p.manifest.mode.padEnd(11)} read ${mib(s.bytesRead).padStart(9)}, ` +
      `stored ${
        mib(s.bytesStored).padStart(9)
      }, ${s.chunksRead} of ${s.chunksTotal} chunks read, ` +
      `${(p.ms / 1000).toFixed(1)} s`,
  );
  console.log(`${"".padEnd(11)} why: ${p.reason}`);
}
for (const c of checks) console.log(c);
console.log(ok ? "demo: all checks passed" : "demo: CHECKS FAILED");
if (!ok) Deno.exit(1);

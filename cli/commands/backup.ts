/**
 * `blksnap backup`: back up live block devices from one snapshot (full or
 * incremental, as the CBT cursor decides), or an image file.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { blockDeviceUse } from "../../lib/block_device.ts";
import {
  backup,
  backupDevices,
  type BackupResult,
  type DeviceIdentity,
  deviceIdentity,
  FileSource,
} from "../../lib/backup/mod.ts";
import { describeError, ExitCode, stoppedCleanly, UsageError } from "../_exit.ts";
import { type CliContext, detail, report, warn } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, formatDuration, parseCount, parseSize } from "../_size.ts";

const STOPPED = "no backup was written; the failed run is recorded (the next backup of the " +
  "device is full) and the lock released";
const STOPPED_SNAPSHOT = `${STOPPED}; the snapshot is destroyed`;

/** One device's lines of the report. */
export function describeBackup(r: BackupResult): string[] {
  const m = r.manifest;
  const s = m.stats;
  const ms = Date.parse(m.endTime) - Date.parse(m.startTime);
  const lines = [
    `${m.device.name}: ${m.mode} backup ${m.id}`,
    `  why: ${r.decision.reason}`,
    `  read ${formatBytes(s.bytesRead)} of ${formatBytes(m.device.capacity)} in ` +
    `${formatDuration(ms)}; chunks: ${s.chunksNew} new (${formatBytes(s.bytesStored)} stored), ` +
    `${s.chunksDeduplicated} deduplicated, ${s.chunksReused} unchanged from the parent, ` +
    `${s.chunksZero} zero`,
  ];
  if (r.healed.length > 0) {
    lines.push(
      `  healed ${r.healed.length} damaged chunk(s): the backups that use them are whole again ` +
        "(the next verify --deep confirms)",
    );
  }
  return lines;
}

/**
 * The identity of an `--image` source: `--name` when given; else a block
 * device's stable id, or a file's absolute path. Warns when a block device is
 * in use: its copy is not a snapshot.
 */
async function imageIdentity(
  ctx: CliContext,
  path: string,
  name: string | undefined,
): Promise<DeviceIdentity> {
  const st = await Deno.stat(path).catch((e) => {
    if (e instanceof Deno.errors.NotFound) {
      throw new UsageError(`--image ${path}: no such file or block device`);
    }
    throw e;
  });
  if (st.isDirectory) throw new UsageError(`--image ${path} is a directory`);
  if (st.isBlockDevice && st.rdev !== null) {
    const use = await blockDeviceUse(path, st.rdev);
    if (use.mounted.length > 0 || use.holders.length > 0) {
      warn(
        ctx,
        `${path} is ${use.mounted.length > 0 ? "mounted" : `held by ${use.holders.join(", ")}`}: ` +
          "--image reads it as it changes (no snapshot), so the copy may be inconsistent; " +
          "back it up with -d/--device instead",
      );
    }
  } else if (!st.isFile) {
    throw new UsageError(`--image ${path} is not a regular file or a block device`);
  }
  if (name !== undefined) return { name };
  return await deviceIdentity(path);
}

/** The `backup` command. */
export function backupCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("backup")
    .description(
      "back up block devices from one snapshot taken at one instant (incremental when the " +
        "CBT cursor allows, full otherwise, with the reason), or an image file with --image",
    )
    .addOption(repoOption())
    .option("-d, --device <path...>", "block devices to back up together")
    .option(
      "-s, --diff-storage <path>",
      "snapshot difference storage: a directory (unnamed temporary file), a file or a device " +
        "not among the backed-up ones",
    )
    .option(
      "-l, --limit <size>",
      "most the difference storage may grow to (default: 1G)",
      parseSize,
    )
    .option(
      "--image <file>",
      "back up this image file (or an unmounted block device) instead: no snapshot, no CBT",
    )
    .option("--name <name>", "with --image: the name its backups chain by (default: its path)")
    .option("--full", "take a full backup whatever the CBT says")
    .option(
      "--require-verified-parent",
      "take a full backup unless the parent passed a deep verify",
    )
    .option(
      "--concurrency <n>",
      "chunks read, hashed and compressed at once; hashing and compression run on one thread " +
        "per core when there are two or more and 256 MiB or more to read",
      (v) => parseCount(v, 1024),
    )
    .action(async (opts) => {
      const devices = opts.device ?? [];
      if ((devices.length > 0) === (opts.image !== undefined)) {
        throw new UsageError("give either -d/--device (one or more) or --image");
      }
      if (devices.length > 0 && opts.diffStorage === undefined) {
        throw new UsageError("-s/--diff-storage is required with --device");
      }
      const repo = await openRepo(repoPath(opts.repo));
      const bar = progressBar(ctx, "backup");
      const common = {
        full: opts.full,
        requireVerifiedParent: opts.requireVerifiedParent,
        concurrency: opts.concurrency,
        onProgress: bar.update,
        onDecision: (d: { mode: string; reason: string }) => detail(ctx, `${d.mode}: ${d.reason}`),
        signal: ctx.signal,
      };
      if (opts.image !== undefined) {
        let r: BackupResult;
        try {
          const identity = await imageIdentity(ctx, opts.image, opts.name);
          using source = await FileSource.open(opts.image, { identity });
          if (source.capacity === 0n) warn(ctx, `${opts.image} is empty (0 bytes)`);
          r = await stoppedCleanly(backup(source, repo, common), STOPPED);
        } finally {
          bar.stop();
        }
        report(ctx, {
          ok: true,
          snapshotId: null,
          backups: [{
            device: r.manifest.device.name,
            newlyAttached: false,
            manifest: r.manifest,
            decision: r.decision,
            healed: r.healed,
            error: null,
          }],
          events: [],
        }, describeBackup(r));
        return;
      }
      let result;
      try {
        result = await backupDevices(devices, repo, {
          ...common,
          diffStorage: opts.diffStorage!,
          limit: opts.limit ?? 1n << 30n,
          onDevice: (t) => {
            bar.stop();
            detail(ctx, `${t.device}: reading ${t.imagePath}`);
          },
        });
      } finally {
        bar.stop();
      }
      // An interruption fails every device with the same reason: report it as one error.
      const stop = result.devices.find((d) => ctx.signal.aborted && d.error === ctx.signal.reason);
      if (stop) await stoppedCleanly(Promise.reject(stop.error), STOPPED_SNAPSHOT);
      const lines: string[] = [];
      for (const d of result.devices) {
        if (d.result) lines.push(...describeBackup(d.result));
        else lines.push(`${d.device}: FAILED: ${describeError(d.error)}`);
      }
      for (const e of result.events) {
        lines.push(`snapshot event: ${e.type}${e.type === "corrupted" ? ` ${e.error}` : ""}`);
      }
      if (!result.ok) {
        ctx.exitCode = ExitCode.Failure;
        // One line for the journal and cron mail, even with --quiet.
        const failed = result.devices.filter((d) => !d.result);
        ctx.io.stderr(
          `blksnap: error: backup of ${failed.map((d) => d.device).join(", ")} failed: ` +
            `${describeError(failed[0]?.error ?? "the snapshot was not set up")}\n`,
        );
      }
      report(ctx, {
        ok: result.ok,
        snapshotId: result.snapshotId,
        backups: result.devices.map((d) => ({
          device: d.device,
          newlyAttached: d.newlyAttached,
          manifest: d.result?.manifest ?? null,
          decision: d.result?.decision ?? null,
          healed: d.result?.healed ?? [],
          error: d.error === undefined ? null : describeError(d.error),
        })),
        events: result.events,
      }, lines);
    });
}

/**
 * `blksnap backup`: back up live block devices from one snapshot (full or
 * incremental, as the CBT cursor decides), or an image file.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { backup, backupDevices, type BackupResult, FileSource } from "../../lib/backup/mod.ts";
import { describeError, ExitCode, UsageError } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, formatDuration, parseCount, parseSize } from "../_size.ts";

/** One device's line of the report. */
export function describeBackup(r: BackupResult): string[] {
  const m = r.manifest;
  const ms = Date.parse(m.endTime) - Date.parse(m.startTime);
  return [
    `${m.device.name}: ${m.mode} backup ${m.id}`,
    `  why: ${r.decision.reason}`,
    `  read ${formatBytes(m.stats.bytesRead)} of ${formatBytes(m.device.capacity)}, ` +
    `stored ${formatBytes(m.stats.bytesStored)} in ${m.stats.chunksNew} new chunk(s), ` +
    `${m.stats.chunksReused} reused, ${m.stats.chunksZero} zero, in ${formatDuration(ms)}`,
  ];
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
    .option("--image <file>", "back up this image file instead of devices (no snapshot, no CBT)")
    .option("--name <name>", "with --image: the device name its backups chain by")
    .option("--full", "take a full backup whatever the CBT says")
    .option(
      "--require-verified-parent",
      "take a full backup unless the parent passed a deep verify",
    )
    .option("--concurrency <n>", "chunks hashed and compressed at once", (v) => parseCount(v, 1024))
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
      };
      if (opts.image !== undefined) {
        let r: BackupResult;
        try {
          using source = await FileSource.open(opts.image, {
            identity: { name: opts.name ?? opts.image },
          });
          r = await backup(source, repo, common);
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
          onDevice: () => bar.stop(),
        });
      } finally {
        bar.stop();
      }
      const lines: string[] = [];
      for (const d of result.devices) {
        if (d.result) lines.push(...describeBackup(d.result));
        else lines.push(`${d.device}: FAILED: ${describeError(d.error)}`);
      }
      for (const e of result.events) {
        lines.push(`snapshot event: ${e.type}${e.type === "corrupted" ? ` ${e.error}` : ""}`);
      }
      if (!result.ok) ctx.exitCode = ExitCode.Failure;
      report(ctx, {
        ok: result.ok,
        snapshotId: result.snapshotId,
        backups: result.devices.map((d) => ({
          device: d.device,
          newlyAttached: d.newlyAttached,
          manifest: d.result?.manifest ?? null,
          decision: d.result?.decision ?? null,
          error: d.error === undefined ? null : describeError(d.error),
        })),
        events: result.events,
      }, lines);
    });
}

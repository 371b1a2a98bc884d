/**
 * `blksnap restore`: write a backup to a file or a block device.
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../../deps.ts";
import { resolveBackupId, restore } from "../../lib/backup/mod.ts";
import { stoppedCleanly, UsageError } from "../_exit.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, formatDuration, parseCount } from "../_size.ts";
import { restoreFilesAction } from "./restore_files.ts";

/** The `restore` command. */
export function restoreCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("restore")
    .description(
      "restore backup <id> to <target>: a new file (sparse), an existing file, or an " +
        "unmounted block device at least as large; every chunk is checked before it is written " +
        "(on one thread per core when there are two or more and 256 MiB or more to decode)",
    )
    .argument("<id>", "backup id, its last 8 hex digits, or latest (see list)")
    .argument("<target>", "file or block device to write (a directory with --files)")
    .addOption(repoOption())
    .option("-d, --device <key>", "with latest: the newest backup of this device (id or path)")
    .option("--resize", "grow an existing regular file that is too small")
    .option("--verify-first", "check every chunk before the target is opened")
    .option(
      "--files <path...>",
      "copy these files or directories (paths inside the backed-up file system) into the " +
        "directory <target> instead, from the backup point mounted read-only for the while",
    )
    .addOption(
      new Option("--partition <n>", "with --files: the partition (1-based) holding them")
        .argParser((s) => parseCount(s, 255)),
    )
    .action(async (spec, target, opts) => {
      if (target === "-") {
        throw new UsageError("restore writes a file or a block device, not stdout: give a path");
      }
      if (opts.files) {
        return await restoreFilesAction(
          ctx,
          repoPath(opts.repo),
          spec,
          target,
          opts.files,
          opts.partition,
        );
      }
      const repo = await openRepo(repoPath(opts.repo));
      const id = await resolveBackupId(repo, spec, { device: opts.device });
      const bar = progressBar(ctx, "restore");
      const started = performance.now();
      let r;
      try {
        r = await stoppedCleanly(
          restore(repo, id, target, {
            resize: opts.resize,
            verifyFirst: opts.verifyFirst,
            onProgress: bar.update,
            signal: ctx.signal,
          }),
          `${target} was removed if this restore created it; an existing file or device is ` +
            "partly written",
        );
      } finally {
        bar.stop();
      }
      const ms = performance.now() - started;
      report(ctx, { ...r, target, durationMs: Math.round(ms) }, [
        `restored ${r.backupId} to ${target} (${r.targetKind})`,
        ...keyValues({
          capacity: `${r.capacity} (${formatBytes(r.capacity)})`,
          bytes_written: r.bytesWritten,
          zero_chunks_skipped: r.chunksSkipped,
          time: formatDuration(ms),
        }),
      ]);
    });
}

/**
 * `blksnap restore`: write a backup to a file or a block device.
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../../deps.ts";
import { restore } from "../../lib/backup/mod.ts";
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
        "unmounted block device at least as large; every chunk is checked before it is written",
    )
    .argument("<id>", "backup id (see list)")
    .argument("<target>", "file or block device to write (a directory with --files)")
    .addOption(repoOption())
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
    .action(async (id, target, opts) => {
      if (opts.files) {
        return await restoreFilesAction(
          ctx,
          repoPath(opts.repo),
          id,
          target,
          opts.files,
          opts.partition,
        );
      }
      const repo = await openRepo(repoPath(opts.repo));
      const bar = progressBar(ctx, "restore");
      const started = performance.now();
      let r;
      try {
        r = await restore(repo, id, target, {
          resize: opts.resize,
          verifyFirst: opts.verifyFirst,
          onProgress: bar.update,
        });
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

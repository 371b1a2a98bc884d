/**
 * `blksnap gc`: remove chunks no backup references.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { gc } from "../../lib/backup/mod.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, parseCount } from "../_size.ts";

/** The `gc` command. */
export function gcCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("gc")
    .description(
      "remove chunks no backup references, leftover temporary files and orphan indexes",
    )
    .addOption(repoOption())
    .option("--dry-run", "count what would be removed, remove nothing")
    .option(
      "--grace <minutes>",
      "never remove chunks written in the last <minutes> (default: 60 on s3://, 0 locally)",
      (v) => parseCount(v, 1_000_000),
    )
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const r = await gc(repo, {
        dryRun: opts.dryRun,
        graceMs: opts.grace === undefined ? undefined : opts.grace * 60_000,
      });
      report(ctx, { dryRun: opts.dryRun ?? false, ...r }, [
        `${opts.dryRun ? "would free" : "freed"} ${formatBytes(r.bytesFreed)}`,
        ...keyValues({
          chunks_kept: r.chunksKept,
          chunks_removed: r.chunksRemoved,
          temp_files_removed: r.tempFilesRemoved,
          orphan_indexes_removed: r.orphanIndexesRemoved,
          run_records_removed: r.runRecordsRemoved,
          ...(r.sparedBefore
            ? { chunks_spared: `${r.chunksSpared} (written after ${r.sparedBefore})` }
            : {}),
          ...(r.chunksRetained ? { chunks_retained_by_object_lock: r.chunksRetained } : {}),
          ...(r.sparedBecause ? { all_unreferenced_spared: r.sparedBecause } : {}),
        }),
      ]);
    });
}

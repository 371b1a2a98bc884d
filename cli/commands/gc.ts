/**
 * `blksnap gc`: remove chunks no backup references.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { gc } from "../../lib/backup/mod.ts";
import { stoppedCleanly } from "../_exit.ts";
import { type CliContext, keyValues, report, warn } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, parseCount } from "../_size.ts";

/** The `gc` command. */
export function gcCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("gc")
    .description(
      "remove chunks no backup references, leftover temporary files, orphan indexes and old " +
        "failed-run records",
    )
    .addOption(repoOption())
    .option("--dry-run", "count what would be removed, remove nothing (takes no lock)")
    .option(
      "--grace <minutes>",
      "never remove chunks written in the last <minutes> (default: 60 on s3://, 0 locally)",
      (v) => parseCount(v, 1_000_000),
    )
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const r = await stoppedCleanly(
        gc(repo, {
          dryRun: opts.dryRun,
          graceMs: opts.grace === undefined ? undefined : opts.grace * 60_000,
          signal: ctx.signal,
        }),
        "what was removed stays removed; the next gc finishes",
      );
      if (r.writer) {
        warn(
          ctx,
          `${r.writer.operation} by pid ${r.writer.pid} on ${r.writer.host} holds the lock: the ` +
            "chunks it is writing are counted here",
        );
      }
      const dry = opts.dryRun ?? false;
      const key = (what: string) => `${what}_${dry ? "to_remove" : "removed"}`;
      report(ctx, { dryRun: dry, ...r }, [
        `${dry ? "would free" : "freed"} ${formatBytes(r.bytesFreed)}`,
        ...keyValues({
          chunks_kept: r.chunksKept,
          [key("chunks")]: r.chunksRemoved,
          [key("temp_files")]: r.tempFilesRemoved,
          [key("orphan_indexes")]: r.orphanIndexesRemoved,
          [key("run_records")]: r.runRecordsRemoved,
          ...(r.sparedBefore
            ? { chunks_spared: `${r.chunksSpared} (written after ${r.sparedBefore})` }
            : {}),
          ...(r.chunksRetained ? { chunks_retained_by_object_lock: r.chunksRetained } : {}),
          ...(r.sparedBecause ? { all_unreferenced_spared: r.sparedBecause } : {}),
        }),
      ]);
    });
}

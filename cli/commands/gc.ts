/**
 * `blksnap gc`: remove chunks no backup references.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { gc, Repository } from "../../lib/backup/mod.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { repoOption, repoPath } from "../_repo.ts";
import { formatBytes } from "../_size.ts";

/** The `gc` command. */
export function gcCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("gc")
    .description(
      "remove chunks no backup references, leftover temporary files and orphan indexes",
    )
    .addOption(repoOption())
    .option("--dry-run", "count what would be removed, remove nothing")
    .action(async (opts) => {
      const repo = await Repository.open(repoPath(opts.repo));
      const r = await gc(repo, { dryRun: opts.dryRun });
      report(ctx, { dryRun: opts.dryRun ?? false, ...r }, [
        `${opts.dryRun ? "would free" : "freed"} ${formatBytes(r.bytesFreed)}`,
        ...keyValues({
          chunks_kept: r.chunksKept,
          chunks_removed: r.chunksRemoved,
          temp_files_removed: r.tempFilesRemoved,
          orphan_indexes_removed: r.orphanIndexesRemoved,
          run_records_removed: r.runRecordsRemoved,
        }),
      ]);
    });
}

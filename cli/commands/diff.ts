/**
 * `blksnap diff`: what changed between two backups.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { diffBackups, resolveBackupId } from "../../lib/backup/mod.ts";
import { type CliContext, detail, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes } from "../_size.ts";

/** The `diff` command. */
export function diffCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("diff")
    .description(
      "compare two backups chunk by chunk (from their indexes, reading no data): the changed " +
        "chunks and bytes, and the new data <b> added to the repository",
    )
    .argument("<a>", "the older backup: id, last 8 hex digits, or latest")
    .argument("<b>", "the newer backup: id, last 8 hex digits, or latest")
    .addOption(repoOption())
    .option("--extents", "also list the changed byte ranges")
    .action(async (a, b, opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const d = await diffBackups(
        repo,
        await resolveBackupId(repo, a),
        await resolveBackupId(repo, b),
      );
      const lines = [
        `${d.a.id} -> ${d.b.id}${d.sameDevice ? "" : " (different devices)"}`,
        `changed: ${d.chunksChanged} chunk(s), ${formatBytes(d.bytesChanged)} in ` +
        `${d.extents.length} extent(s)`,
        `new data in ${d.b.id}: ${d.chunksOnlyInB} chunk(s), ${formatBytes(d.bytesOnlyInB)}`,
      ];
      if (opts.extents) {
        for (const e of d.extents) lines.push(`extent offset=${e.offset} length=${e.length}`);
      } else if (d.extents.length > 0) detail(ctx, "(--extents lists the changed ranges)");
      report(ctx, d, lines);
    });
}

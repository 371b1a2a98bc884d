/**
 * `blksnap repair`: rewrite damaged and missing chunks from another copy of
 * the data, and list what is lost.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { FileSource, repair } from "../../lib/backup/mod.ts";
import { ExitCode, stoppedCleanly } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";

/** The `repair` command. */
export function repairCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("repair")
    .description(
      "rewrite the chunks a deep verify found bad (run verify --deep first) and the missing " +
        "ones from sources that may hold the data: image files, the device itself, a snapshot " +
        "image, a restore from another repository; only data whose SHA-256 matches is written, " +
        "so any source is safe; lists what no source held and the backups it breaks (exit 3)",
    )
    .addOption(repoOption())
    .requiredOption("--source <path...>", "files or block devices to read")
    .option("--dry-run", "find what could be repaired, write nothing (takes no lock)")
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const sources: FileSource[] = [];
      const bar = progressBar(ctx, "repair");
      let r;
      try {
        for (const path of opts.source) sources.push(await FileSource.open(path));
        r = await stoppedCleanly(
          repair(repo, sources, {
            dryRun: opts.dryRun,
            onProgress: bar.update,
            signal: ctx.signal,
          }),
          "the chunks rewritten before the stop stay repaired",
        );
      } finally {
        bar.stop();
        for (const s of sources) s.close();
      }
      if (r.lost.length > 0) ctx.exitCode = ExitCode.Damage;
      const verb = r.dryRun ? "could repair" : "repaired";
      const lines = [`${verb} ${r.repaired.length} of ${r.wanted} damaged or missing chunk(s)`];
      for (const c of r.lost) {
        lines.push(`lost ${c.problem} chunk ${c.digest}; used by ${c.backups.join(", ")}`);
      }
      if (r.lostBackups.length > 0) {
        lines.push(
          `not restorable whole: ${r.lostBackups.join(", ")} (another source may still hold ` +
            "the data; blksnap forget removes a backup that is lost)",
        );
      }
      if (!r.dryRun && r.repaired.length > 0) lines.push("run verify --deep to confirm");
      report(ctx, r, lines);
    });
}

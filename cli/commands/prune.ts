/**
 * `blksnap prune`: remove backups a retention policy does not keep.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { prune } from "../../lib/backup/mod.ts";
import { UsageError } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { parseCount } from "../_size.ts";

/** The `prune` command. */
export function pruneCommand(ctx: CliContext): CommandUnknownOpts {
  const n = (v: string) => parseCount(v, 1_000_000);
  return new Command("prune")
    .description(
      "remove the backups no keep rule keeps, per device (then run gc to free chunks)",
    )
    .addOption(repoOption())
    .option("--keep-last <n>", "keep the newest n backups", n)
    .option("--keep-daily <n>", "keep the newest backup of each of the last n days", n)
    .option("--keep-weekly <n>", "keep the newest backup of each of the last n ISO weeks", n)
    .option("--keep-monthly <n>", "keep the newest backup of each of the last n months", n)
    .option("-d, --device <key>", "only prune backups of this device (its id, or its name)")
    .option("--dry-run", "show what would be removed, remove nothing")
    .action(async (opts) => {
      const policy = {
        keepLast: opts.keepLast,
        keepDaily: opts.keepDaily,
        keepWeekly: opts.keepWeekly,
        keepMonthly: opts.keepMonthly,
      };
      if (Object.values(policy).every((v) => v === undefined || v === 0)) {
        throw new UsageError(
          "give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly",
        );
      }
      const repo = await openRepo(repoPath(opts.repo));
      const r = await prune(repo, policy, { dryRun: opts.dryRun, device: opts.device });
      const verb = opts.dryRun ? "would remove" : "removed";
      const lines = [
        ...r.kept.map((k) => `keep    ${k.id}  (${k.reasons.join(", ")})`),
        ...r.removed.map((id) => `${opts.dryRun ? "remove" : "removed"} ${id}`),
        `${verb} ${r.removed.length} backup(s), kept ${r.kept.length}`,
      ];
      for (const p of r.problems) lines.push(`unreadable (kept): ${p.id}: ${p.error}`);
      report(ctx, { dryRun: opts.dryRun ?? false, ...r }, lines);
    });
}

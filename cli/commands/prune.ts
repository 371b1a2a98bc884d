/**
 * `blksnap prune`: remove backups a retention policy does not keep.
 *
 * @module
 */

import { Command, type CommandUnknownOpts, InvalidArgumentError } from "../../deps.ts";
import { parseRetentionDuration, prune } from "../../lib/backup/mod.ts";
import { stoppedCleanly, UsageError } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { parseCount } from "../_size.ts";

function duration(text: string): string {
  try {
    parseRetentionDuration(text);
    return text;
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

/** The `prune` command. */
export function pruneCommand(ctx: CliContext): CommandUnknownOpts {
  const n = (v: string) => parseCount(v, 1_000_000);
  return new Command("prune")
    .description(
      "remove the backups no keep rule keeps, per device (then run gc to free chunks); each " +
        "rule keeps the newest backup of each of its last n periods (UTC)",
    )
    .addOption(repoOption())
    .option("--keep-last <n>", "keep the newest n backups", n)
    .option("--keep-hourly <n>", "keep the newest backup of each of the last n hours", n)
    .option("--keep-daily <n>", "keep the newest backup of each of the last n days", n)
    .option("--keep-weekly <n>", "keep the newest backup of each of the last n ISO weeks", n)
    .option("--keep-monthly <n>", "keep the newest backup of each of the last n months", n)
    .option("--keep-yearly <n>", "keep the newest backup of each of the last n years", n)
    .option(
      "--keep-within <duration>",
      "keep every backup within this long of the device's newest (e.g. 7d, 2w, 1y6m, 36h)",
      duration,
    )
    .option("-d, --device <key>", "only prune backups of this device (its id, or its name)")
    .option("--dry-run", "show what would be removed, remove nothing (takes no lock)")
    .action(async (opts) => {
      const policy = {
        keepLast: opts.keepLast,
        keepHourly: opts.keepHourly,
        keepDaily: opts.keepDaily,
        keepWeekly: opts.keepWeekly,
        keepMonthly: opts.keepMonthly,
        keepYearly: opts.keepYearly,
        keepWithin: opts.keepWithin,
      };
      const { keepWithin, ...counts } = policy;
      if (keepWithin === undefined && Object.values(counts).every((v) => !v)) {
        throw new UsageError(
          "give at least one of --keep-last, --keep-hourly, --keep-daily, --keep-weekly, " +
            "--keep-monthly, --keep-yearly, --keep-within",
        );
      }
      const repo = await openRepo(repoPath(opts.repo));
      const r = await stoppedCleanly(
        prune(repo, policy, { dryRun: opts.dryRun, device: opts.device, signal: ctx.signal }),
        "the backups listed as removed before the stop are gone, the others kept",
      );
      const verb = opts.dryRun ? "would remove" : "removed";
      const lines = [
        ...r.kept.map((k) => `keep    ${k.id}  (${k.reasons.join(", ")})`),
        ...r.removed.map((id) => `${opts.dryRun ? "remove" : "removed"} ${id}`),
        `${verb} ${r.removed.length} backup(s), kept ${r.kept.length}`,
      ];
      for (const p of r.problems) {
        lines.push(`unreadable (kept; blksnap forget removes it): ${p.id}: ${p.error}`);
      }
      report(ctx, { dryRun: opts.dryRun ?? false, ...r }, lines);
    });
}

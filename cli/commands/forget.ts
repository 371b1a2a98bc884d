/**
 * `blksnap forget`: remove chosen backups (by id, short id or `latest`).
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { forget } from "../../lib/backup/mod.ts";
import { stoppedCleanly } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";

/** The `forget` command. */
export function forgetCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("forget")
    .description(
      "remove the named backups (also one whose manifest is unreadable); every backup is " +
        "logically full, so no other backup is affected; run gc afterwards to free chunks",
    )
    .argument("<id...>", "backup ids, their last 8 hex digits, or latest")
    .addOption(repoOption())
    .option("-d, --device <key>", "with latest: the newest backup of this device (id or path)")
    .option("--dry-run", "name what would be removed, remove nothing (takes no lock)")
    .action(async (specs, opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const r = await stoppedCleanly(
        forget(repo, specs, { dryRun: opts.dryRun, device: opts.device, signal: ctx.signal }),
        "the backups removed before the stop are gone, the others kept",
      );
      const verb = r.dryRun ? "would remove" : "removed";
      report(ctx, r, [
        ...r.removed.map((id) => `${verb} ${id}`),
        `${verb} ${r.removed.length} backup(s)`,
      ]);
    });
}

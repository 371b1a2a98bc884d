/**
 * `blksnap unlock`: remove a repository lock left behind.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { unlock } from "../../lib/backup/mod.ts";
import { type CliContext, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";

/** The `unlock` command. */
export function unlockCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("unlock")
    .description(
      "remove the repository's lock when it is stale (its process is dead on this host, or it " +
        "is older than an hour); --force also when its holder may still run, e.g. a lock a " +
        "crashed host left on a shared repository (exit 4 without --force)",
    )
    .addOption(repoOption())
    .option("--force", "remove the lock even if its holder may be running")
    .option("--dry-run", "say what would be removed")
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const r = await unlock(repo, { force: opts.force, dryRun: opts.dryRun });
      const h = r.removed?.info;
      const who = h ? `${h.operation} by pid ${h.pid} on ${h.host} since ${h.time}` : "unreadable";
      report(
        ctx,
        { dryRun: opts.dryRun ?? false, removed: r.removed },
        r.removed === null
          ? `${repo.path} is not locked`
          : `${opts.dryRun ? "would remove" : "removed"} the lock (${who}${
            r.removed.stale ? ", stale" : ""
          })`,
      );
    });
}

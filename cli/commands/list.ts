/**
 * `blksnap list`: the backups in a repository.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { list, matchesDevice } from "../../lib/backup/mod.ts";
import { type CliContext, report, table } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes } from "../_size.ts";

/** The `list` command. */
export function listCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("list")
    .description(
      "list the backups in a repository, oldest first (ADDED: new data this backup stored; " +
        "VERIFIED: the last deep verify's result, or damaged when its index is missing or cut)",
    )
    .addOption(repoOption())
    .option("-d, --device <key>", "only backups of this device (its id, or its name)")
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const result = await list(repo, { checkIndexes: true });
      const backups = opts.device === undefined
        ? result.backups
        : result.backups.filter((b) => matchesDevice(b, opts.device!));
      const damaged = new Set(result.problems.map((p) => p.id));
      const rows = backups.map((b) => [
        b.id,
        b.device.name,
        b.mode,
        formatBytes(b.device.capacity),
        formatBytes(b.stats.bytesRead),
        formatBytes(b.stats.bytesStored),
        damaged.has(b.id) ? "damaged" : b.verification.state,
        b.parent ?? "-",
      ]);
      const lines = backups.length === 0 ? ["no backups"] : table(
        ["ID", "DEVICE", "MODE", "SIZE", "READ", "ADDED", "VERIFIED", "PARENT"],
        rows,
      );
      for (const p of result.problems) lines.push(`unreadable: ${p.id}: ${p.error}`);
      report(ctx, { repository: repo.path, backups, problems: result.problems }, lines);
    });
}

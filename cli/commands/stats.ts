/**
 * `blksnap stats`: logical, deduplicated and stored sizes, per device.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { stats, type UsageStats } from "../../lib/backup/mod.ts";
import { type CliContext, report, table } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes } from "../_size.ts";

function ratio(a: number | bigint, b: number): string {
  return b === 0 ? "-" : `${(Number(a) / b).toFixed(2)}x`;
}

function row(name: string, u: UsageStats): string[] {
  return [
    name,
    String(u.backups),
    formatBytes(u.logicalBytes),
    formatBytes(u.dataBytes),
    formatBytes(u.storedBytes),
    ratio(u.logicalBytes, u.dataBytes),
    ratio(u.dataBytes, u.storedBytes),
  ];
}

/** The `stats` command. */
export function statsCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("stats")
    .description(
      "what the repository holds: LOGICAL (every backup's size added up), UNIQUE (distinct " +
        "chunk data after dedup) and STORED (on disk after compression), in total and per " +
        "device (chunks shared between devices count in each)",
    )
    .addOption(repoOption())
    .option("-d, --device <key>", "only this device's backups (its id, or its name)")
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const s = await stats(repo, { device: opts.device });
      const lines = table(
        ["DEVICE", "BACKUPS", "LOGICAL", "UNIQUE", "STORED", "DEDUP", "COMPRESSION"],
        [...s.devices.map((d) => row(d.name, d)), row("total", s)],
      );
      if (s.missingChunks > 0) lines.push(`missing chunk files: ${s.missingChunks} (run verify)`);
      if (s.unreferencedChunks > 0) {
        lines.push(
          `unreferenced: ${s.unreferencedChunks} chunk(s), ${
            formatBytes(s.unreferencedBytes)
          } (gc frees them)`,
        );
      }
      for (const p of s.problems) lines.push(`unreadable (not counted): ${p.id}: ${p.error}`);
      report(ctx, s, lines);
    });
}

/**
 * `blksnap verify`: check a repository; exit 3 when data is missing or corrupt.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { verify } from "../../lib/backup/mod.ts";
import { ExitCode } from "../_exit.ts";
import { type CliContext, report } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";

/** The `verify` command. */
export function verifyCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("verify")
    .description(
      "check every backup: manifests, index checksums and chunk presence; with --deep also " +
        "decompress and re-hash every chunk, with --scrub read every chunk and check its " +
        "CRC-32 (exit 3 when something is missing or corrupt)",
    )
    .addOption(repoOption())
    .option("--deep", "decompress and re-hash every referenced chunk")
    .option(
      "--scrub",
      "read every referenced chunk and check its CRC-32 (its tag when encrypted): finds media " +
        "damage at the speed of reading; --deep also finds chunks that were wrong when written",
    )
    .option("--no-mark", "do not record a deep verify's result in the manifests")
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const bar = progressBar(ctx, "verify", "items");
      let r;
      try {
        r = await verify(repo, {
          deep: opts.deep ?? false,
          scrub: opts.scrub ?? false,
          mark: opts.deep ? opts.mark : false,
          onProgress: bar.update,
        });
      } finally {
        bar.stop();
      }
      if (!r.ok) ctx.exitCode = ExitCode.Damage;
      const lines = [
        `${r.ok ? "ok" : "DAMAGED"}: ${
          r.deep ? "deep" : r.scrub ? "scrub" : "fast"
        } verify of ${repo.path}: ` +
        `${r.backupsChecked} backup(s), ${r.chunksChecked} chunk(s) checked`,
      ];
      for (const b of r.badBackups) lines.push(`bad backup ${b.id}: ${b.error} (${b.path})`);
      for (const c of r.badChunks) {
        lines.push(`${c.problem} chunk ${c.digest}: ${c.detail}; used by ${c.backups.join(", ")}`);
      }
      const warn = (n: number, what: string) => {
        if (n > 0) lines.push(`warning: ${n} ${what} (gc removes them)`);
      };
      warn(r.unreferencedChunks.length, "unreferenced chunk(s)");
      warn(r.orphanIndexes.length, "index file(s) without a manifest");
      warn(r.tempFiles.length, "leftover temporary file(s)");
      if (r.strayFiles.length > 0) {
        lines.push(`warning: ${r.strayFiles.length} stray file(s) in chunks/`);
      }
      report(ctx, r, lines);
    });
}

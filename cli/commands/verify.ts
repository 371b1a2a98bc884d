/**
 * `blksnap verify`: check a repository; exit 3 when data is missing or corrupt.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { shortId, verify, type VerifyReport } from "../../lib/backup/mod.ts";
import { ExitCode, stoppedCleanly } from "../_exit.ts";
import { type CliContext, detail, report, warn } from "../_output.ts";
import { progressBar } from "../_progress.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";

/** The report's lines: the verdict, each error, then what healed. */
function describeReport(r: VerifyReport, path: string): string[] {
  const lines = [
    `${r.ok ? "ok" : "DAMAGED"}: ${r.deep ? "deep" : r.scrub ? "scrub" : "fast"} verify of ` +
    `${path}: ` +
    `${r.backupsChecked} backup(s), ${r.chunksChecked} chunk(s) checked`,
  ];
  for (const b of r.badBackups) {
    lines.push(
      `bad backup ${b.id}: ${b.error} (${b.path}); if it cannot be repaired, remove it with ` +
        `blksnap forget ${shortId(b.id)}`,
    );
  }
  for (const c of r.badChunks) {
    lines.push(`${c.problem} chunk ${c.digest}: ${c.detail}; used by ${c.backups.join(", ")}`);
  }
  if (r.damageRecordError) lines.push(`unreadable damage record: ${r.damageRecordError}`);
  if (r.badChunks.length > 0) {
    lines.push(
      "the next backup of each affected device rewrites these chunks if its data is unchanged; " +
        "blksnap repair --source FILE|DEVICE rewrites them from another copy",
    );
  }
  for (const h of r.healedChunks) {
    lines.push(
      `healed chunk ${h.digest}${h.by ? ` (rewritten by ${h.by})` : ""}` +
        `${h.confirmed ? "" : ", to be confirmed by verify --deep"}`,
    );
  }
  if (r.healedBackups.length > 0) {
    lines.push(
      `whole again${r.deep ? "" : " (as far as a fast verify can tell)"}: ` +
        r.healedBackups.join(", "),
    );
  }
  return lines;
}

/** The `verify` command. */
export function verifyCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("verify")
    .description(
      "check every backup: manifests, index checksums, chunk presence and chunks known to be " +
        "bad; with --deep also decompress and re-hash every chunk, with --scrub read every chunk " +
        "and check its CRC-32 (exit 3 when something is missing or corrupt); says which " +
        "damaged backups were healed",
    )
    .addOption(repoOption())
    .option(
      "--deep",
      "decompress and re-hash every referenced chunk (on one thread per core when there are two or more)",
    )
    .option(
      "--scrub",
      "read every referenced chunk and check its CRC-32 (its tag when encrypted): finds media " +
        "damage at the speed of reading; --deep also finds chunks that were wrong when written",
    )
    .option(
      "--no-mark",
      "do not record a deep verify's result in the manifests and the damage record",
    )
    .action(async (opts) => {
      const repo = await openRepo(repoPath(opts.repo));
      const bar = progressBar(ctx, "verify");
      let r;
      try {
        r = await stoppedCleanly(
          verify(repo, {
            deep: opts.deep ?? false,
            scrub: opts.scrub ?? false,
            mark: opts.deep ? opts.mark : false,
            onProgress: bar.update,
            signal: ctx.signal,
          }),
          "nothing was recorded and the lock is released",
        );
      } finally {
        bar.stop();
      }
      if (!r.ok) ctx.exitCode = ExitCode.Damage;
      report(ctx, r, describeReport(r, repo.path));
      if (!r.ok && ctx.verbosity === 0) {
        ctx.io.stderr(
          `blksnap: verify of ${repo.path} found damage: ${r.badChunks.length} bad chunk(s), ` +
            `${r.badBackups.length} bad backup(s)\n`,
        );
      }
      if (r.unreferencedChunks.length > 0) {
        const n = r.unreferencedChunks.length;
        warn(
          ctx,
          r.writer
            ? `${n} chunk(s) not referenced yet: ${r.writer.operation} by pid ${r.writer.pid} on ` +
              `${r.writer.host} is writing (gc removes what it leaves)`
            : `${n} unreferenced chunk(s) (gc removes them)`,
        );
      }
      if (r.orphanIndexes.length > 0) {
        warn(ctx, `${r.orphanIndexes.length} index file(s) without a manifest (gc removes them)`);
      }
      if (r.tempFiles.length > 0) {
        warn(ctx, `${r.tempFiles.length} leftover temporary file(s) (gc removes them)`);
      }
      if (r.strayFiles.length > 0) warn(ctx, `${r.strayFiles.length} stray file(s) in chunks/`);
      if (r.widePermissions.length > 0) {
        warn(
          ctx,
          `${r.widePermissions.length} file(s) or directories others may read (the repository ` +
            `holds whole disks): chmod -R go-rwx ${repo.path}`,
        );
        for (const p of r.widePermissions.slice(0, 20)) detail(ctx, `  ${p}`);
      }
    });
}

/**
 * `blksnap copy`: copy backups from one repository to another (only the
 * chunks the target lacks; renamed and sealed again when the keys differ).
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { copy, Repository } from "../../lib/backup/mod.ts";
import { UsageError } from "../_exit.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { readPassphrase } from "../_password.ts";
import { openRepo, safeEnv } from "../_repo.ts";
import { formatBytes } from "../_size.ts";

/** The `copy` command. */
export function copyCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("copy")
    .description(
      "copy backups between repositories (e.g. a local one to s3://): only missing chunks move",
    )
    .requiredOption("--from <repo>", "source repository: a directory or s3://bucket/prefix")
    .requiredOption(
      "--to <repo>",
      "target repository (its passphrase: --to-password-file, " +
        "$BLKSNAP_TO_PASSWORD, else the source's)",
    )
    .option("--to-password-file <file>", "passphrase of the target: the file's first line")
    .option("--latest", "copy the newest backup of each device")
    .argument("[ids...]", "backup ids to copy (default with neither: all)")
    .action(async (ids, opts) => {
      if (opts.latest && ids.length > 0) {
        throw new UsageError("give backup ids or --latest, not both");
      }
      const from = await openRepo(opts.from);
      const to = await Repository.open(opts.to, {
        passphrase: async () =>
          opts.toPasswordFile !== undefined || safeEnv("BLKSNAP_TO_PASSWORD") !== undefined
            ? await readPassphrase("Target passphrase", {
              file: opts.toPasswordFile,
              envName: "BLKSNAP_TO_PASSWORD",
            })
            : await readPassphrase(),
      });
      let chosen = ids;
      if (opts.latest) {
        const newest = new Map<string, string>();
        for (const id of await from.listBackupIds()) {
          const m = await from.readManifest(id);
          newest.set(m.device.id ?? m.device.name, id);
        }
        chosen = [...newest.values()];
      } else if (chosen.length === 0) {
        chosen = await from.listBackupIds();
      }
      const r = await copy(from, to, chosen);
      report(ctx, r, [
        `copied ${r.copied.length} backup(s) from ${from.path} to ${to.path}`,
        ...keyValues({
          copied: r.copied.join(" ") || "-",
          already_there: r.skipped.join(" ") || "-",
          chunks_copied: r.chunksCopied,
          chunks_present: r.chunksPresent,
          stored: formatBytes(r.bytesStored),
          reencrypted: r.reencrypted ? "yes (keys differ)" : "no",
        }),
      ]);
    });
}

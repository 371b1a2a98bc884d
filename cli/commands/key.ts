/**
 * `blksnap key list|add|remove|passwd`: the key slots of an encrypted
 * repository. Each slot wraps the repository's master key under one
 * passphrase (scrypt); changing or adding a passphrase rewrites one small
 * object, never the data.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { type CliContext, report, table } from "../_output.ts";
import { readPassphrase, scryptOf } from "../_password.ts";
import { parseCount } from "../_size.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import type { Repository } from "../../lib/backup/mod.ts";
import { RepoError } from "../../lib/backup/errors.ts";

/** The new passphrase: `--new-password-file`, `$BLKSNAP_NEW_PASSWORD`, or asked twice. */
function newPassphrase(file: string | undefined): Promise<string> {
  return readPassphrase("New passphrase", {
    confirm: true,
    file,
    envName: "BLKSNAP_NEW_PASSWORD",
  });
}

async function encryptedRepo(path: string | undefined): Promise<Repository> {
  const repo = await openRepo(repoPath(path));
  if (!repo.encrypted) {
    throw new RepoError("INVALID", `${repo.path} is not encrypted: it has no keys`);
  }
  return repo;
}

/** The `key` command and its subcommands. */
export function keyCommand(ctx: CliContext): CommandUnknownOpts {
  const key = new Command("key").description(
    "the passphrases (key slots) of an encrypted repository",
  );
  key.addCommand(
    new Command("list")
      .description("list the key slots: id, label, creation time, scrypt cost")
      .addOption(repoOption())
      .action(async (opts) => {
        const repo = await encryptedRepo(opts.repo);
        const slots = await repo.keySlots();
        report(
          ctx,
          { slots: slots.map(({ id, label, created, kdf }) => ({ id, label, created, kdf })) },
          table(
            ["ID", "CREATED", "SCRYPT N", "LABEL"],
            slots.map((s) => [
              s.id + (s.id === repo.openedSlot ? " *" : ""),
              s.created,
              String(s.kdf.N),
              s.label,
            ]),
          ),
        );
      }),
  );
  key.addCommand(
    new Command("add")
      .description("add a passphrase (a new key slot); asks for an existing one first")
      .addOption(repoOption())
      .option("--label <text>", "who or what the new passphrase is for", "")
      .option("--new-password-file <file>", "the new passphrase: the file's first line")
      .option("--kdf-log2n <n>", "scrypt cost N = 2^n (default: 17)", (v) => parseCount(v, 22))
      .action(async (opts) => {
        const repo = await encryptedRepo(opts.repo);
        const slot = await repo.addKey(await newPassphrase(opts.newPasswordFile), {
          label: opts.label,
          scrypt: scryptOf(opts.kdfLog2n),
        });
        report(ctx, { added: slot.id, label: slot.label }, `added key slot ${slot.id}`);
      }),
  );
  key.addCommand(
    new Command("remove")
      .description("remove a key slot (never the last one)")
      .addOption(repoOption())
      .argument("<id>", "slot id, as `key list` shows it")
      .action(async (id, opts) => {
        const repo = await encryptedRepo(opts.repo);
        await repo.removeKey(id);
        report(ctx, { removed: id }, `removed key slot ${id}`);
      }),
  );
  key.addCommand(
    new Command("passwd")
      .description("change the passphrase that opened the repository (its slot is replaced)")
      .addOption(repoOption())
      .option("--new-password-file <file>", "the new passphrase: the file's first line")
      .option("--kdf-log2n <n>", "scrypt cost N = 2^n (default: 17)", (v) => parseCount(v, 22))
      .action(async (opts) => {
        const repo = await encryptedRepo(opts.repo);
        const old = repo.openedSlot!;
        const label = (await repo.keySlots()).find((s) => s.id === old)?.label ?? "";
        const slot = await repo.addKey(await newPassphrase(opts.newPasswordFile), {
          label,
          scrypt: scryptOf(opts.kdfLog2n),
        });
        await repo.removeKey(old);
        report(ctx, { replaced: old, by: slot.id }, `replaced key slot ${old} by ${slot.id}`);
      }),
  );
  return key;
}

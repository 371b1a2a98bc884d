/**
 * `blksnap init`: create a backup repository.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Repository } from "../../lib/backup/mod.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { readPassphrase, scryptOf } from "../_password.ts";
import { repoOption, repoPath } from "../_repo.ts";
import { formatBytes, parseCount, parseSizeNumber } from "../_size.ts";

/** The `init` command. */
export function initCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("init")
    .description(
      "create a backup repository in an empty or missing directory, or at s3://bucket/prefix",
    )
    .addOption(repoOption())
    .option(
      "-c, --chunk-size <size>",
      "chunk size: a power of two from 4K to 64M",
      (v) => parseSizeNumber(v, 4096, 64 << 20),
    )
    .option(
      "--compression-level <n>",
      "zstd level of stored chunks, 1..19 (default: 1)",
      (v) => parseCount(v, 19),
    )
    .option(
      "--no-encryption",
      "store chunks, indexes and manifests in plain text (format 1); default: encrypted",
    )
    .option(
      "--kdf-log2n <n>",
      "scrypt cost of the passphrase's key slot: N = 2^n, 10..22 (default: 17, 128 MiB)",
      (v) => parseCount(v, 22),
    )
    .option(
      "--object-lock-days <n>",
      "s3:// only: create the bucket with Object Lock and keep every object n days",
      (v) => parseCount(v, 36500),
    )
    .action(async (opts) => {
      const path = repoPath(opts.repo);
      const passphrase = opts.encryption === false
        ? undefined
        : () => readPassphrase("New repository passphrase", { confirm: true });
      const repo = await Repository.init(path, {
        passphrase,
        scrypt: scryptOf(opts.kdfLog2n),
        chunkSize: opts.chunkSize,
        compressionLevel: opts.compressionLevel,
        objectLockDays: opts.objectLockDays,
      });
      const c = repo.config;
      const { encryption, ...shown } = c;
      report(ctx, { path, ...shown, encrypted: encryption !== undefined }, [
        `initialized repository ${path}`,
        ...keyValues({
          id: c.id,
          chunk_size: `${c.chunkSize} (${formatBytes(c.chunkSize)})`,
          compression: `${c.compression.algorithm} level ${c.compression.level}`,
          encryption: c.encryption ? `${c.encryption.aead} (format ${c.version})` : "none",
          ...(c.objectLockDays ? { object_lock_days: c.objectLockDays } : {}),
        }),
      ]);
    });
}

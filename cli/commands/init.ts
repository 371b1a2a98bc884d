/**
 * `blksnap init`: create a backup repository.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Repository } from "../../lib/backup/mod.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { repoOption, repoPath } from "../_repo.ts";
import { formatBytes, parseCount, parseSizeNumber } from "../_size.ts";

/** The `init` command. */
export function initCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("init")
    .description("create a backup repository in an empty or missing directory")
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
    .action(async (opts) => {
      const path = repoPath(opts.repo);
      const repo = await Repository.init(path, {
        chunkSize: opts.chunkSize,
        compressionLevel: opts.compressionLevel,
      });
      const c = repo.config;
      report(ctx, { path, ...c }, [
        `initialized repository ${path}`,
        ...keyValues({
          id: c.id,
          chunk_size: `${c.chunkSize} (${formatBytes(c.chunkSize)})`,
          compression: `${c.compression.algorithm} level ${c.compression.level}`,
        }),
      ]);
    });
}

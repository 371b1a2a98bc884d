/**
 * `blksnap serve`: serve a backup point over NBD in the foreground until
 * SIGINT or SIGTERM.
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../../deps.ts";
import { resolveBackupId } from "../../lib/backup/mod.ts";
import { type NbdListenAddress, serveBackupPoint } from "../../lib/nbd/mod.ts";
import { UsageError } from "../_exit.ts";
import { type CliContext, keyValues, note, report } from "../_output.ts";
import { openRepo, repoOption, repoPath } from "../_repo.ts";
import { formatBytes, parseCount, parseSizeNumber } from "../_size.ts";

/** The `serve` command. */
export function serveCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("serve")
    .description(
      "serve backup <id> as a block device over NBD (read-only, or writable into a local " +
        "copy-on-write --overlay file) until SIGINT/SIGTERM; clients: nbd-client, qemu, " +
        "nbdinfo, nbdcopy, qemu-img",
    )
    .argument("<id>", "backup id, its last 8 hex digits, or latest (see list)")
    .addOption(repoOption())
    .option("--socket <path>", "listen on this Unix socket (created with mode 0600)")
    .addOption(
      new Option("--port <n>", "listen on this TCP port of 127.0.0.1 (any local user can connect)")
        .argParser((s) => parseCount(s, 65535)),
    )
    .option(
      "--overlay <file>",
      "accept writes into this sparse copy-on-write file (and <file>.map); never into the " +
        "repository; reused when it exists for the same backup",
    )
    .option(
      "--cache <size>",
      "memory for decoded chunks (default: 64M)",
      (s) => parseSizeNumber(s, 0, 2 ** 40),
    )
    .option(
      "--read-ahead <chunks>",
      "chunks read ahead of a sequential reader (default: 4)",
      (s) => parseCount(s, 1024),
    )
    .action(async (spec, opts) => {
      if ((opts.socket === undefined) === (opts.port === undefined)) {
        throw new UsageError("give exactly one of --socket <path> or --port <n>");
      }
      const address: NbdListenAddress = opts.socket !== undefined
        ? { socket: opts.socket }
        : { port: opts.port! };
      const repo = await openRepo(repoPath(opts.repo));
      const id = await resolveBackupId(repo, spec);
      const log = (m: string): void => ctx.io.stderr(`blksnap serve: ${m}\n`);
      const served = await serveBackupPoint(repo, id, address, {
        overlay: opts.overlay,
        cacheBytes: opts.cache,
        readAhead: opts.readAhead,
        log,
      });
      const stop = (): void => {
        note(ctx, "blksnap serve: stopping");
        void served.close();
      };
      // SIGINT/SIGTERM abort ctx.signal (cli/main.ts), also one that came
      // while the server was starting, before this listener existed.
      ctx.signal.addEventListener("abort", stop, { once: true });
      if (ctx.signal.aborted) stop();
      const size = served.backup.size;
      note(
        ctx,
        `blksnap serve: backup ${id} (${formatBytes(size)}) on ${served.server.address}` +
          `${served.overlay ? `, writes to ${served.overlay.path}` : ", read-only"}; ` +
          `connect with ${served.uri}`,
      );
      try {
        await served.server.finished;
        await served.close();
      } finally {
        ctx.signal.removeEventListener("abort", stop);
      }
      const stats = served.backup.stats;
      report(ctx, {
        backupId: id,
        address: served.server.address,
        uri: served.uri,
        size,
        overlay: served.overlay?.path ?? null,
        overlayBlocksWritten: served.overlay?.blocksWritten ?? 0,
        stats,
      }, [
        `served ${id} on ${served.server.address}`,
        ...keyValues({
          chunk_cache_hits: stats.hits,
          chunks_read: stats.misses,
          chunks_prefetched: stats.prefetched,
          failed_reads: stats.failedReads,
          ...(served.overlay ? { overlay_blocks_written: served.overlay.blocksWritten } : {}),
        }),
      ]);
    });
}

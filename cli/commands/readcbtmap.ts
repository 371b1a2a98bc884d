/**
 * `blksnap readcbtmap`: read a tracker's CBT map (the one frozen at the last
 * snapshot take), save it raw, and summarise what changed.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Tracker } from "../../lib/tracker.ts";
import { type CliContext, keyValues, report } from "../_output.ts";
import { formatBytes, parseCount } from "../_size.ts";

/** The `readcbtmap` command. */
export function readcbtmapCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("readcbtmap")
    .description(
      "read the CBT map (one byte per block: the changes number that last wrote it); " +
        "save it raw with --file, list changed extents with --since",
    )
    .requiredOption("-d, --device <path>", "tracked block device")
    .option("-f, --file <path>", "write the raw map bytes to this file")
    .option(
      "-s, --since <n>",
      "report the extents changed after changes number n (0..255)",
      (v) => parseCount(v, 255),
    )
    .action(async (opts) => {
      using tracker = Tracker.open(opts.device);
      const map = await tracker.readCbtMapAsync();
      if (opts.file !== undefined) await Deno.writeFile(opts.file, map.toBytes());
      const since = opts.since;
      const extents = since === undefined ? undefined : map.changedExtents(since);
      const changedBytes = since === undefined ? undefined : map.changedBytes(since);
      const lines = keyValues({
        device: opts.device,
        block_size: map.info.blockSize,
        block_count: map.info.blockCount,
        generation_id: map.info.generationId,
        changes_number: map.info.changesNumber,
        ...(opts.file !== undefined ? { file: opts.file } : {}),
      });
      if (extents !== undefined && changedBytes !== undefined) {
        lines.push(
          `changed_since_${since}=${changedBytes} (${
            formatBytes(changedBytes)
          } in ${extents.length} extent(s))`,
        );
        for (const e of extents) lines.push(`extent offset=${e.offset} length=${e.length}`);
      }
      report(ctx, {
        device: opts.device,
        info: map.info,
        file: opts.file ?? null,
        since: since ?? null,
        changedBytes: changedBytes ?? null,
        extents: extents ?? null,
      }, lines);
    });
}

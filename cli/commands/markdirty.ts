/**
 * `blksnap markdirty`: mark sector ranges of a tracked device as changed, so
 * the next incremental backup reads them again; or the blocks of a file.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Tracker } from "../../lib/tracker.ts";
import { UsageError } from "../_exit.ts";
import { fileSectors } from "../../lib/fiemap.ts";
import { type CliContext, report } from "../_output.ts";
import { formatBytes, parseSectorRange, type SectorRange } from "../_size.ts";

/** The `markdirty` command. */
export function markdirtyCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("markdirty")
    .alias("markdirtyblock")
    .description(
      "mark ranges of 512-byte sectors as changed in both CBT maps, so the next incremental " +
        "backup reads them again: --device with --ranges, or --file (its blocks, by FIEMAP, on " +
        "the device holding it)",
    )
    .option("-d, --device <path>", "tracked block device")
    .option(
      "-r, --ranges <sector:count...>",
      "ranges of sectors, e.g. 2048:8 4096:16",
      (v: string, prev: SectorRange[] | undefined) => [...(prev ?? []), parseSectorRange(v)],
    )
    .option("-f, --file <path>", "a file whose blocks to mark, on the tracked device holding it")
    .action(async (opts) => {
      let device: string;
      let ranges: SectorRange[];
      if (opts.file !== undefined) {
        if (opts.device !== undefined || opts.ranges !== undefined) {
          throw new UsageError("give --file, or --device with --ranges, not both");
        }
        const f = await fileSectors(opts.file);
        device = f.device;
        ranges = f.ranges;
      } else {
        if (opts.device === undefined || opts.ranges === undefined) {
          throw new UsageError("give --device with --ranges, or --file");
        }
        device = opts.device;
        ranges = opts.ranges;
      }
      if (ranges.length > 0) {
        using tracker = Tracker.open(device);
        tracker.markDirty(ranges);
      }
      const sectors = ranges.reduce((s, r) => s + r.count, 0n);
      report(
        ctx,
        { device, file: opts.file ?? null, ranges, bytes: sectors * 512n },
        `${device}: marked ${ranges.length} range(s), ${formatBytes(sectors * 512n)} dirty`,
      );
    });
}

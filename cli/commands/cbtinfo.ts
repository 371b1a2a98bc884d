/**
 * `blksnap cbtinfo`: a tracker's CBT parameters.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Tracker } from "../../lib/tracker.ts";
import { type CliContext, keyValues, report } from "../_output.ts";

/** The `cbtinfo` command. */
export function cbtinfoCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("cbtinfo")
    .description("print the tracker's CBT parameters: block size and count, generation, changes")
    .requiredOption("-d, --device <path>", "tracked block device")
    .action((opts) => {
      using tracker = Tracker.open(opts.device);
      const info = tracker.cbtInfo();
      report(
        ctx,
        { device: opts.device, ...info },
        keyValues({
          block_size: info.blockSize,
          device_capacity: info.deviceCapacity,
          block_count: info.blockCount,
          generation_id: info.generationId,
          changes_number: info.changesNumber,
        }),
      );
    });
}

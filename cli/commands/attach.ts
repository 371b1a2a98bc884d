/**
 * `blksnap attach` and `blksnap detach`: start and stop change tracking on a
 * block device.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { Tracker } from "../../lib/tracker.ts";
import { type CliContext, report } from "../_output.ts";

/** The `attach` command. */
export function attachCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("attach")
    .description("attach the change tracker to a block device (already attached is fine)")
    .requiredOption("-d, --device <path>", "block device, e.g. /dev/vdb")
    .action((opts) => {
      using tracker = Tracker.open(opts.device);
      const attached = tracker.attach();
      report(
        ctx,
        { device: opts.device, attached, transport: tracker.transport },
        `${opts.device}: ${attached ? "attached" : "already attached"}`,
      );
    });
}

/** The `detach` command. */
export function detachCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("detach")
    .description("detach the change tracker from a block device (its CBT map is lost)")
    .requiredOption("-d, --device <path>", "block device")
    .action((opts) => {
      using tracker = Tracker.open(opts.device);
      tracker.detach();
      report(ctx, { device: opts.device, detached: true }, `${opts.device}: detached`);
    });
}

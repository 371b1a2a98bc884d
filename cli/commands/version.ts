/**
 * `blksnap version`: the loaded kernel module's version.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { moduleVersion } from "../../lib/module_version.ts";
import { type CliContext, report } from "../_output.ts";

/** The `version` command. */
export function versionCommand(ctx: CliContext, cliVersion = "0.1.0"): CommandUnknownOpts {
  return new Command("version")
    .description("print the loaded kernel module's version (the CLI's own: --version)")
    .action(() => {
      const v = moduleVersion();
      const text = `${v.major}.${v.minor}.${v.revision}.${v.build}`;
      report(ctx, { module: v, moduleVersion: text, cli: cliVersion }, text);
    });
}

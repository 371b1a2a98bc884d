/**
 * The `blksnap` command: the low-level commands of the upstream blksnap tool
 * (version, attach, detach, cbtinfo, readcbtmap, markdirty, snapshot ...)
 * and the operator's commands (init, backup, restore, verify, list, prune,
 * gc). Human output by default, `--json` for automation, progress bars on a
 * terminal. Exit codes: 0 ok, 1 runtime failure, 2 usage error, 3 verify
 * found damage, 4 repository locked (see `cli/_exit.ts` and
 * docs/operations.md).
 *
 * Importing this module opens nothing: libblksnap is loaded on the first
 * command that talks to the kernel.
 *
 * ```sh
 * deno run -A cli/main.ts --help
 * deno run -A cli/main.ts backup -r /backup/repo -d /dev/vdb --diff-storage /var/tmp
 * ```
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../deps.ts";
import { describeError, errorCodeOf, ExitCode, exitCodeOf, isCommanderError } from "./_exit.ts";
import { type CliContext, type CliIo, denoIo, newContext } from "./_output.ts";
import { setPasswordFile } from "./_password.ts";
import { copyCommand } from "./commands/copy.ts";
import { keyCommand } from "./commands/key.ts";
import { attachCommand, detachCommand } from "./commands/attach.ts";
import { backupCommand } from "./commands/backup.ts";
import { cbtinfoCommand } from "./commands/cbtinfo.ts";
import { gcCommand } from "./commands/gc.ts";
import { initCommand } from "./commands/init.ts";
import { listCommand } from "./commands/list.ts";
import { markdirtyCommand } from "./commands/markdirty.ts";
import { mountCommand, umountCommand } from "./commands/mount.ts";
import { pruneCommand } from "./commands/prune.ts";
import { readcbtmapCommand } from "./commands/readcbtmap.ts";
import { restoreCommand } from "./commands/restore.ts";
import { serveCommand } from "./commands/serve.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { verifyCommand } from "./commands/verify.ts";
import { versionCommand } from "./commands/version.ts";

/** The CLI's own version (the package version). */
export const CLI_VERSION = "0.1.0";

const EXIT_CODES_HELP = `
Exit codes:
  0  success
  1  runtime failure (kernel, library, repository or I/O error)
  2  usage error (unknown command or option, bad or missing argument)
  3  verify found missing or corrupt data
  4  the repository is locked by another writer`;

function configureTree(cmd: CommandUnknownOpts, io: CliIo): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: (s) => io.stdout(s),
    writeErr: (s) => io.stderr(s),
    getOutHelpWidth: () => io.columns ?? 100,
    getErrHelpWidth: () => io.columns ?? 100,
  });
  cmd.configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  cmd.showHelpAfterError("(add --help for usage)");
  for (const sub of cmd.commands) configureTree(sub, io);
}

/**
 * Build the command tree for one run. Actions write through `ctx.io` and set
 * `ctx.exitCode`; parse errors and action errors are thrown (commander's
 * `exitOverride`), never `Deno.exit`.
 *
 * @example Parse without running anything
 * ```ts
 * import { buildCli } from "./main.ts";
 * import { newContext } from "./_output.ts";
 * const out: string[] = [];
 * const io = { stdout: (s: string) => out.push(s), stderr: (s: string) => out.push(s), isTerminal: false };
 * const cli = buildCli(newContext(io));
 * console.log(cli.commands.map((c) => c.name()).join(" "));
 * ```
 */
export function buildCli(ctx: CliContext): CommandUnknownOpts {
  const program = new Command()
    .name("blksnap")
    .description(
      "Change block tracking, copy-on-write snapshots and block-level incremental backups of " +
        "live Linux block devices.",
    )
    .version(CLI_VERSION, "-V, --version", "print the CLI's version")
    .option("-j, --json", "print one JSON document instead of text")
    .addOption(
      new Option("--lib <path>", "path of libblksnap.so (sets BLKSNAP_LIB)"),
    )
    .option(
      "--password-file <file>",
      "passphrase of an encrypted repository: the file's first line (else $BLKSNAP_PASSWORD, " +
        "else asked on the terminal)",
    )
    .addHelpText("after", EXIT_CODES_HELP)
    .helpCommand(true)
    .hook("preAction", (root) => {
      const opts = root.opts();
      ctx.json = opts.json ?? false;
      if (opts.lib !== undefined) Deno.env.set("BLKSNAP_LIB", opts.lib);
      setPasswordFile(opts.passwordFile);
    });
  const commands = [
    versionCommand(ctx),
    attachCommand(ctx),
    detachCommand(ctx),
    cbtinfoCommand(ctx),
    readcbtmapCommand(ctx),
    markdirtyCommand(ctx),
    snapshotCommand(ctx),
    initCommand(ctx),
    backupCommand(ctx),
    restoreCommand(ctx),
    serveCommand(ctx),
    mountCommand(ctx),
    umountCommand(ctx),
    verifyCommand(ctx),
    listCommand(ctx),
    pruneCommand(ctx),
    gcCommand(ctx),
    copyCommand(ctx),
    keyCommand(ctx),
  ];
  for (const c of commands) program.addCommand(c);
  configureTree(program, ctx.io);
  return program;
}

/**
 * Run the command with `argv` (without the program name) and return the
 * exit code. Never exits the process.
 *
 * @example
 * ```ts
 * import { run } from "./main.ts";
 * const io = { stdout: () => {}, stderr: () => {}, isTerminal: false };
 * console.log(await run(["--version"], io)); // 0
 * ```
 */
export async function run(argv: string[], io: CliIo = denoIo()): Promise<number> {
  const ctx = newContext(io);
  const program = buildCli(ctx);
  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (error) {
    const code = exitCodeOf(error);
    // commander already printed its own message
    if (!isCommanderError(error)) {
      if (ctx.json) {
        const doc = { error: describeError(error), code: errorCodeOf(error), exitCode: code };
        io.stdout(JSON.stringify(doc) + "\n");
      }
      io.stderr(`blksnap: error: ${describeError(error)}\n`);
      const tried = (error as { tried?: unknown }).tried;
      if (Array.isArray(tried)) { for (const t of tried) io.stderr(`  tried ${t}\n`); }
    }
    return code === ExitCode.Ok ? ExitCode.Ok : code;
  }
}

if (import.meta.main) {
  Deno.exit(await run(Deno.args));
}

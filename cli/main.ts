/**
 * The `blksnap` command: the low-level commands of the upstream blksnap tool
 * (version, attach, detach, cbtinfo, readcbtmap, markdirty, snapshot ...)
 * and the operator's commands (init, backup, restore, serve, verify, list,
 * stats, diff, prune, forget, gc, repair, unlock, completion). Human output
 * by default, `--json` for automation, `--quiet` for schedulers, progress
 * bars on a terminal. SIGINT and SIGTERM stop a run cleanly (snapshot
 * destroyed, failed run recorded, lock released, partial new file removed,
 * terminal restored); a second one stops it at once. Exit codes: 0 ok, 1
 * runtime failure, 2 usage error, 3 verify found damage, 4 repository
 * locked, 130/143 stopped by SIGINT/SIGTERM (see `cli/_exit.ts` and
 * docs/operations.md).
 *
 * Importing this module opens nothing: libblksnap is loaded on the first
 * command that talks to the kernel. Deno asks `--allow-all` for device files
 * and for /proc and /sys, so the command runs with `-A`.
 *
 * ```sh
 * deno run -A cli/main.ts --help
 * deno run -A cli/main.ts backup -r /backup/repo -d /dev/vdb --diff-storage /var/tmp
 * ```
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../deps.ts";
import {
  describeError,
  errorCodeOf,
  ExitCode,
  exitCodeOf,
  Interrupted,
  isCommanderError,
} from "./_exit.ts";
import { type CliContext, type CliIo, denoIo, newContext } from "./_output.ts";
import { setPasswordFile } from "./_password.ts";
import { attachCommand, detachCommand } from "./commands/attach.ts";
import { backupCommand } from "./commands/backup.ts";
import { cbtinfoCommand } from "./commands/cbtinfo.ts";
import { completionCommand } from "./commands/completion.ts";
import { copyCommand } from "./commands/copy.ts";
import { diffCommand } from "./commands/diff.ts";
import { forgetCommand } from "./commands/forget.ts";
import { gcCommand } from "./commands/gc.ts";
import { initCommand } from "./commands/init.ts";
import { keyCommand } from "./commands/key.ts";
import { listCommand } from "./commands/list.ts";
import { markdirtyCommand } from "./commands/markdirty.ts";
import { mountCommand, umountCommand } from "./commands/mount.ts";
import { pruneCommand } from "./commands/prune.ts";
import { readcbtmapCommand } from "./commands/readcbtmap.ts";
import { repairCommand } from "./commands/repair.ts";
import { restoreCommand } from "./commands/restore.ts";
import { serveCommand } from "./commands/serve.ts";
import { snapshotCommand } from "./commands/snapshot.ts";
import { statsCommand } from "./commands/stats.ts";
import { unlockCommand } from "./commands/unlock.ts";
import { verifyCommand } from "./commands/verify.ts";
import { versionCommand } from "./commands/version.ts";

/** The CLI's own version (the package version). */
export const CLI_VERSION = "0.1.0";

const EXIT_CODES_HELP = `
Exit codes:
  0    success
  1    runtime failure (kernel, library, repository or I/O error)
  2    usage error (unknown command or option, bad or missing argument)
  3    verify found missing or corrupt data
  4    the repository is locked by another writer
  130  stopped by SIGINT (Ctrl-C); 143: stopped by SIGTERM`;

function configureTree(cmd: CommandUnknownOpts, io: CliIo): void {
  cmd.exitOverride();
  cmd.configureOutput({
    writeOut: (s) => io.stdout(s),
    writeErr: (s) => io.stderr(s),
    // One error line, prefixed like every other error of the command.
    outputError: (s, write) => write(s.replace(/^error: /, "blksnap: error: ")),
    getOutHelpWidth: () => io.columns ?? 100,
    getErrHelpWidth: () => io.columns ?? 100,
  });
  cmd.configureHelp({ showGlobalOptions: true, sortSubcommands: false });
  // commander lists required options among the others; say which they are.
  for (const o of cmd.options) {
    if (o.mandatory && !o.description.endsWith("(required)")) o.description += " (required)";
  }
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
    .option("-j, --json", "print one JSON document instead of text (errors too)")
    .option("-q, --quiet", "print nothing on success but warnings (for cron and systemd)")
    .option("-v, --verbose", "print more detail on stderr")
    .addOption(
      new Option("--lib <path>", "path of libblksnap.so.1 (sets BLKSNAP_LIB)"),
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
      ctx.verbosity = opts.quiet ? 0 : opts.verbose ? 2 : 1;
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
    repairCommand(ctx),
    listCommand(ctx),
    statsCommand(ctx),
    diffCommand(ctx),
    pruneCommand(ctx),
    forgetCommand(ctx),
    gcCommand(ctx),
    unlockCommand(ctx),
    copyCommand(ctx),
    keyCommand(ctx),
    completionCommand(ctx),
  ];
  for (const c of commands) program.addCommand(c);
  configureTree(program, ctx.io);
  return program;
}

/** Options of {@linkcode run}. */
export interface RunOptions {
  /** Stops the run (the CLI aborts it with an `Interrupted` on SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Runs when the signal aborts, before the flows wind down (tests watch it). */
  onInterrupt?: Set<() => void>;
}

/**
 * Run the command with `argv` (without the program name) and return the
 * exit code. Never exits the process and installs no signal handler (see
 * {@linkcode main}).
 *
 * @example
 * ```ts
 * import { run } from "./main.ts";
 * const io = { stdout: () => {}, stderr: () => {}, isTerminal: false };
 * console.log(await run(["--version"], io)); // 0
 * ```
 */
export async function run(
  argv: string[],
  io: CliIo = denoIo(),
  options: RunOptions = {},
): Promise<number> {
  const ctx = newContext(io, options.signal);
  for (const f of options.onInterrupt ?? []) ctx.onInterrupt.add(f);
  options.signal?.addEventListener("abort", () => {
    for (const f of [...ctx.onInterrupt]) f();
  }, { once: true });
  // --json must shape a usage error too, before commander has parsed it.
  const jsonAsked = argv.includes("--json") || argv.includes("-j");
  const program = buildCli(ctx);
  try {
    await program.parseAsync(argv, { from: "user" });
    return ctx.exitCode;
  } catch (error) {
    const code = exitCodeOf(error);
    if (code === ExitCode.Ok) return ExitCode.Ok; // --help, --version
    if (isCommanderError(error)) {
      // commander printed its line already
      if (jsonAsked) {
        const message = (error as Error).message.replace(/^error: /, "");
        const doc = { error: message, code: (error as { code: string }).code, exitCode: code };
        io.stdout(JSON.stringify(doc) + "\n");
      }
      return code;
    }
    if (ctx.json || jsonAsked) {
      const doc: Record<string, unknown> = {
        error: describeError(error),
        code: errorCodeOf(error),
        exitCode: code,
      };
      const tried = (error as { tried?: unknown }).tried;
      if (Array.isArray(tried)) doc.tried = tried;
      io.stdout(JSON.stringify(doc) + "\n");
    }
    io.stderr(`blksnap: error: ${describeError(error)}\n`);
    const tried = (error as { tried?: unknown }).tried;
    if (Array.isArray(tried)) { for (const t of tried) io.stderr(`  tried ${t}\n`); }
    return code;
  }
}

/** Show the cursor and turn autowrap back on, in case a progress bar was cut short. */
const RESTORE_TERMINAL = "\x1b[?25h\x1b[?7h";

/**
 * Run the command as a process: SIGINT and SIGTERM abort the run (it stops
 * cleanly within about one read and exits 130 or 143); a second signal
 * restores the terminal and exits at once. Returns the exit code.
 */
export async function main(argv: string[] = Deno.args): Promise<number> {
  const io = denoIo();
  const abort = new AbortController();
  const signals: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = signals.map((signal) => {
    const handler = (): void => {
      if (abort.signal.aborted) {
        if (io.stderrIsTerminal) io.stderr(RESTORE_TERMINAL);
        io.stderr(`blksnap: ${signal} again: stopping now, without cleaning up\n`);
        Deno.exit(signal === "SIGINT" ? ExitCode.Sigint : ExitCode.Sigterm);
      }
      abort.abort(new Interrupted(signal as "SIGINT" | "SIGTERM"));
    };
    Deno.addSignalListener(signal, handler);
    return [signal, handler] as const;
  });
  try {
    return await run(argv, io, { signal: abort.signal });
  } finally {
    for (const [signal, handler] of handlers) Deno.removeSignalListener(signal, handler);
    if (abort.signal.aborted && io.stderrIsTerminal) io.stderr(RESTORE_TERMINAL);
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}

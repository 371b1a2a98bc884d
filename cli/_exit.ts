/**
 * Exit codes of the `blksnap` command and the mapping from errors to them.
 *
 * | code | meaning                                                         |
 * | ---- | --------------------------------------------------------------- |
 * | 0    | success (also `--help`, `--version`)                            |
 * | 1    | runtime failure: kernel, library, repository or I/O error       |
 * | 2    | usage error: unknown command or option, bad or missing argument |
 * | 3    | `verify` found damage (missing or corrupt chunks or backups)    |
 * | 4    | the repository is locked by another writer                      |
 * | 130  | stopped by SIGINT (Ctrl-C)                                      |
 * | 143  | stopped by SIGTERM (systemd stop, kill)                         |
 *
 * Every message an operator reads for an error is made here
 * ({@linkcode describeError}), with the hints that say what to do
 * ({@linkcode ERROR_HINTS}): add a hint there, not in a command.
 *
 * @module
 */

/** The documented exit codes. */
export const ExitCode = {
  /** Success. */
  Ok: 0,
  /** A runtime failure (kernel, library, repository, I/O). */
  Failure: 1,
  /** A usage error (unknown command or option, bad argument). */
  Usage: 2,
  /** `verify` found missing or corrupt data. */
  Damage: 3,
  /** The repository is locked by another writer; retry later. */
  Locked: 4,
  /** Stopped by SIGINT (128 + 2). */
  Sigint: 130,
  /** Stopped by SIGTERM (128 + 15). */
  Sigterm: 143,
} as const;
/** One of {@linkcode ExitCode}. */
export type ExitCode = typeof ExitCode[keyof typeof ExitCode];

/**
 * A usage problem found by an action after commander parsed the argv (for
 * example two options that exclude each other). Exits with
 * {@linkcode ExitCode.Usage}.
 */
export class UsageError extends Error {
  override name = "UsageError";
}

/**
 * The run was stopped by a signal: the reason the command's AbortSignal is
 * aborted with, thrown back by the flows. Exits 130 (SIGINT) or 143 (SIGTERM).
 */
export class Interrupted extends Error {
  override name = "Interrupted";
  /** The signal received. */
  readonly signal: "SIGINT" | "SIGTERM";
  /** What the command left behind, set by the command that stopped (one clause). */
  detail = "";
  /** Build the error for `signal`. */
  constructor(signal: "SIGINT" | "SIGTERM") {
    super(`interrupted by ${signal}`);
    this.signal = signal;
  }
}

/**
 * Run `work`; if it stops because of an {@linkcode Interrupted}, say what was
 * left behind (`detail`) and let it through.
 */
export async function stoppedCleanly<T>(work: Promise<T>, detail: string): Promise<T> {
  try {
    return await work;
  } catch (e) {
    if (e instanceof Interrupted && e.detail === "") e.detail = detail;
    throw e;
  }
}

/** The fields of a `BlksnapError` the CLI prints; matched structurally. */
interface BlksnapErrorLike {
  name: string;
  message: string;
  errno: number;
  code: string;
  op: string;
}

function isBlksnapError(e: unknown): e is BlksnapErrorLike {
  return e instanceof Error && e.name === "BlksnapError" &&
    typeof (e as Partial<BlksnapErrorLike>).code === "string";
}

function repoCode(e: unknown): string | undefined {
  if (!(e instanceof Error)) return undefined;
  if (!["RepoError", "CorruptError"].includes(e.name)) return undefined;
  const code = (e as { code?: unknown }).code;
  return typeof code === "string" ? code : undefined;
}

/** True for commander's own errors (it has printed their message already). */
export function isCommanderError(e: unknown): boolean {
  return commanderCode(e) !== undefined;
}

/** A commander error (`CommanderError` or `InvalidArgumentError`), matched structurally. */
function commanderCode(e: unknown): { code: string; exitCode: number } | undefined {
  if (!(e instanceof Error)) return undefined;
  const { code, exitCode } = e as { code?: unknown; exitCode?: unknown };
  if (typeof code === "string" && code.startsWith("commander.") && typeof exitCode === "number") {
    return { code, exitCode };
  }
  return undefined;
}

/** The symbolic code of an error (`"EBUSY"`, `"LOCKED"`), if it has one. */
export function errorCodeOf(error: unknown): string | null {
  if (isBlksnapError(error)) return error.code;
  return repoCode(error) ?? null;
}

/**
 * The exit code for an error thrown while parsing or running a command.
 *
 * @example
 * ```ts
 * import { ExitCode, exitCodeOf, UsageError } from "./_exit.ts";
 * console.log(exitCodeOf(new UsageError("--repo is required")) === ExitCode.Usage);
 * ```
 */
export function exitCodeOf(error: unknown): ExitCode {
  if (error instanceof Interrupted) {
    return error.signal === "SIGINT" ? ExitCode.Sigint : ExitCode.Sigterm;
  }
  const c = commanderCode(error);
  if (c) return c.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (error instanceof UsageError || error instanceof RangeError) return ExitCode.Usage;
  const rc = repoCode(error);
  if (rc === "LOCKED") return ExitCode.Locked;
  if (rc === "INVALID") return ExitCode.Usage;
  return ExitCode.Failure;
}

/** The control device the blksnap module creates. */
export const CONTROL_DEVICE = "/dev/blksnap-control";

function exists(path: string): boolean | null {
  try {
    Deno.statSync(path);
    return true;
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? false : null;
  }
}

/** A hint appended to an error's line when `applies` says it fits. */
export interface ErrorHint {
  /** Whether the hint fits `error` (structural checks only; may look at the system). */
  applies(error: unknown): boolean;
  /** The hint, a sentence without a final period. */
  text(error: unknown): string;
}

const MODULE_HINT = `${CONTROL_DEVICE} is missing: the blksnap module is not loaded; load it ` +
  "with `modprobe blksnap` (installed with DKMS) or `insmod kmod/module/build-$(uname -r)/" +
  "blksnap.ko`";

/**
 * What a snapshot request's errno means for the operator, where the errno's
 * own text does not say it (docs/kernel-abi.md, "Snapshots").
 */
const SNAPSHOT_HINTS: Record<string, string> = {
  EDEADLK: "the difference storage rests on a device of this snapshot (through LVM, " +
    "dm-crypt, md or a loop device's backing file), or on a device of another snapshot " +
    "that stores on this one's devices; copy-on-write would wait for itself: put the " +
    "storage on a disk the snapshots do not include",
  EBUSY: "the device is in another snapshot, overlaps a device in a snapshot (a " +
    "partition and its whole disk), or holds this snapshot's difference storage",
  EEXIST: "an image of this device from an earlier snapshot still exists (the device " +
    "was detached and attached again): destroy that snapshot first",
};

/**
 * What to do about an error, one entry per situation. The first that
 * applies is appended to the error's line.
 */
export const ERROR_HINTS: ErrorHint[] = [
  {
    // ENOENT from any kernel call while the control device is missing: the
    // module is not loaded, whatever path the message names.
    applies: (e) => isBlksnapError(e) && e.code === "ENOENT" && exists(CONTROL_DEVICE) === false,
    text: () => MODULE_HINT,
  },
  {
    applies: (e) => isBlksnapError(e) && (e.code === "EPERM" || e.code === "EACCES"),
    text: () => "run as root (the module requires CAP_SYS_ADMIN)",
  },
  {
    applies: (e) =>
      isBlksnapError(e) && e.op.startsWith("Snapshot.") && SNAPSHOT_HINTS[e.code] !== undefined,
    text: (e) => SNAPSHOT_HINTS[(e as BlksnapErrorLike).code],
  },
  {
    // Stale locks (a dead process of this host, older than an hour) are broken
    // by the next run; what is left is a live run or another host's lock.
    applies: (e) => repoCode(e) === "LOCKED",
    text: () =>
      "if no blksnap runs there any more (a crashed host), remove the lock with " +
      "`blksnap unlock --force`",
  },
  {
    applies: (e) => e instanceof Error && e.name === "NotCapable",
    text: () =>
      "Deno asks --allow-all (-A) for device files and /proc and /sys; run blksnap with -A",
  },
];

/**
 * One line for the operator describing `error`, without the program name.
 * A `BlksnapError` shows its operation, symbolic code and errno; a
 * repository error its code (and the chunk file's path for `BAD_CHUNK`); a
 * library load error its first line (the paths tried are listed apart). A
 * hint from {@linkcode ERROR_HINTS} follows when one applies.
 */
export function describeError(error: unknown): string {
  let line: string;
  if (error instanceof Interrupted) {
    return `${error.message}${error.detail ? `: ${error.detail}` : ""}`;
  }
  if (isBlksnapError(error)) line = `${error.message} [errno ${error.errno}]`;
  else if (repoCode(error) !== undefined) {
    const e = error as Error & { path?: string };
    const path = repoCode(error) === "BAD_CHUNK" && e.path && !e.message.includes(e.path)
      ? ` (${e.path})`
      : "";
    line = `${repoCode(error)}: ${e.message}${path}`;
  } else if (error instanceof Error) {
    const first = error.message.split("\n")[0];
    const cause = error.cause instanceof Error ? ` (${error.cause.message.split("\n")[0]})` : "";
    line = `${first}${cause}`;
  } else line = String(error);
  const hint = ERROR_HINTS.find((h) => h.applies(error));
  return hint ? `${line}; ${hint.text(error)}` : line;
}

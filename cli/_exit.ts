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
  const c = commanderCode(error);
  if (c) return c.exitCode === 0 ? ExitCode.Ok : ExitCode.Usage;
  if (error instanceof UsageError || error instanceof RangeError) return ExitCode.Usage;
  const rc = repoCode(error);
  if (rc === "LOCKED") return ExitCode.Locked;
  if (rc === "INVALID") return ExitCode.Usage;
  return ExitCode.Failure;
}

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
 * One line for the operator describing `error`, without the program name.
 * A `BlksnapError` shows its operation, symbolic code and errno, and for a
 * snapshot request whose errno needs it, what it means.
 */
export function describeError(error: unknown): string {
  if (isBlksnapError(error)) {
    const hint = error.op.startsWith("Snapshot.") ? SNAPSHOT_HINTS[error.code] : undefined;
    return `${error.message} [errno ${error.errno}]${hint ? `: ${hint}` : ""}`;
  }
  const rc = repoCode(error);
  if (rc !== undefined) return `${rc}: ${(error as Error).message}`;
  if (error instanceof Error) {
    const cause = error.cause instanceof Error ? ` (${error.cause.message})` : "";
    return `${error.message}${cause}`;
  }
  return String(error);
}

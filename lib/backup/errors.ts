/**
 * Typed errors of the backup repository and flows.
 *
 * @module
 */

/** Machine-readable classes of {@linkcode RepoError}. */
export const RepoErrorCode = {
  /** A repository file failed a check (size, magic, checksum, schema). */
  Corrupt: "CORRUPT",
  /** A file the repository needs does not exist. */
  NotFound: "NOT_FOUND",
  /** Another writer holds the repository lock. */
  Locked: "LOCKED",
  /** A stored chunk is missing or its content does not match its name. */
  BadChunk: "BAD_CHUNK",
  /** The restore target cannot be used (too small, mounted, not a file or device). */
  BadTarget: "BAD_TARGET",
  /** An argument or option is out of range. */
  Invalid: "INVALID",
  /** An I/O error from the operating system (see `errno`). */
  Io: "IO",
  /** Reading the backup source failed. */
  Source: "SOURCE",
  /** An encrypted repository: no passphrase given, or no key slot opens with it. */
  Key: "KEY",
} as const;
/** One of {@linkcode RepoErrorCode}. */
export type RepoErrorCode = typeof RepoErrorCode[keyof typeof RepoErrorCode];

/** Options of {@linkcode RepoError}. */
export interface RepoErrorOptions {
  /** The file the error is about. */
  path?: string;
  /** The underlying error. */
  cause?: unknown;
}

/**
 * The one error class the repository and flows throw. `code` says what went
 * wrong, `path` names the file.
 *
 * @example Tell a lock conflict from corruption
 * ```ts
 * import { RepoError } from "./errors.ts";
 * const e: unknown = new RepoError("LOCKED", "Repository is locked");
 * if (e instanceof RepoError && e.code === "LOCKED") console.log("retry later");
 * ```
 */
export class RepoError extends Error {
  /** Always `"RepoError"`. */
  override name = "RepoError";
  /** What went wrong. */
  readonly code: RepoErrorCode;
  /** The file the error is about, if any. */
  readonly path?: string;
  /** For `IO` errors: the OS error name (`"ENOSPC"`, `"EIO"`...), if known. */
  readonly errno?: string;

  /** Build an error. */
  constructor(code: RepoErrorCode, message: string, options: RepoErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    if (options.path !== undefined) this.path = options.path;
    const errno = errnoOf(options.cause);
    if (errno !== undefined) this.errno = errno;
  }
}

/** A repository file is corrupt; `path` names it. */
export class CorruptError extends RepoError {
  /** Always `"CorruptError"`. */
  override name = "CorruptError";
  /** Build the error for `path`. */
  constructor(path: string, detail: string, cause?: unknown) {
    super("CORRUPT", `Corrupt repository file ${path}: ${detail}`, { path, cause });
  }
}

/** The OS error name carried by `e` (`code` of Deno and Node errors). */
export function errnoOf(e: unknown): string | undefined {
  if (e instanceof RepoError) return e.errno;
  if (typeof e === "object" && e !== null && "code" in e) {
    const code = (e as { code: unknown }).code;
    if (typeof code === "string" && /^E[A-Z0-9]+$/.test(code)) return code;
  }
  if (e instanceof Deno.errors.NotFound) return "ENOENT";
  if (e instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (e instanceof Deno.errors.AlreadyExists) return "EEXIST";
  return undefined;
}

/**
 * True if `e` is the reason `signal` was aborted with: the flows let it
 * through unwrapped, so the caller (the CLI on SIGINT/SIGTERM) recognizes
 * its own interruption.
 */
export function isAbortOf(e: unknown, signal: AbortSignal | undefined): boolean {
  return signal !== undefined && signal.aborted && e === signal.reason;
}

/** Wrap an OS error from operation `op` on `path` as an `IO` {@linkcode RepoError}. */
export function ioError(op: string, path: string, cause: unknown): RepoError {
  if (cause instanceof RepoError) return cause;
  const errno = errnoOf(cause);
  const detail = cause instanceof Error ? cause.message : String(cause);
  return new RepoError("IO", `${op} ${path} failed${errno ? ` (${errno})` : ""}: ${detail}`, {
    path,
    cause,
  });
}

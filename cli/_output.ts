/**
 * Output of the `blksnap` command: where text goes ({@linkcode CliIo}), the
 * per-run {@linkcode CliContext} every subcommand gets, and JSON encoding
 * with exact 64-bit integers.
 *
 * Human output is the default; with `--json` each reporting command prints
 * exactly one JSON document on stdout. Diagnostics go to stderr. `--quiet`
 * prints nothing on success but warnings; `--verbose` adds detail lines on
 * stderr.
 *
 * @module
 */

/** Where the command writes; tests capture it. */
export interface CliIo {
  /** Write to standard output (text is written as given, newlines included). */
  stdout(text: string): void;
  /** Write to standard error. */
  stderr(text: string): void;
  /** True when standard output is a terminal. */
  readonly isTerminal: boolean;
  /** True when standard error is a terminal (progress bars are drawn there only then). */
  readonly stderrIsTerminal?: boolean;
  /** Terminal width for help text, or undefined for commander's default. */
  readonly columns?: number;
}

const encoder = new TextEncoder();

function writeAllSync(w: { writeSync(p: Uint8Array): number }, text: string): void {
  const bytes = encoder.encode(text);
  let done = 0;
  while (done < bytes.length) done += w.writeSync(bytes.subarray(done));
}

/** The process's own stdout and stderr. */
export function denoIo(): CliIo {
  const terminal = (f: { isTerminal(): boolean }) => {
    try {
      return f.isTerminal();
    } catch {
      return false;
    }
  };
  return {
    stdout: (text) => writeAllSync(Deno.stdout, text),
    stderr: (text) => writeAllSync(Deno.stderr, text),
    isTerminal: terminal(Deno.stdout),
    stderrIsTerminal: terminal(Deno.stderr),
  };
}

/** The state of one run of the command, shared by the actions. */
export interface CliContext {
  /** Output streams. */
  readonly io: CliIo;
  /** `--json` was given. Set before any action runs. */
  json: boolean;
  /** The exit code an action asks for on success (e.g. 3 when verify finds damage). */
  exitCode: number;
  /** 0 with `--quiet`, 1 by default, 2 with `--verbose`. Set before any action runs. */
  verbosity: number;
  /** Aborted with an `Interrupted` on SIGINT/SIGTERM; every long command passes it on. */
  readonly signal: AbortSignal;
  /** Run on interruption before anything is printed (progress bars restore the terminal). */
  readonly onInterrupt: Set<() => void>;
}

/** A new context writing to `io`, stopped through `signal`. */
export function newContext(
  io: CliIo,
  signal: AbortSignal = new AbortController().signal,
): CliContext {
  return { io, json: false, exitCode: 0, verbosity: 1, signal, onInterrupt: new Set() };
}

interface RawJson {
  rawJSON(text: string): unknown;
}

/**
 * JSON text of `value` with `bigint`s as exact JSON numbers (not strings, not
 * rounded) and `Uint8Array`s as hex strings.
 *
 * @example
 * ```ts
 * import { toJson } from "./_output.ts";
 * console.log(toJson({ capacity: 2n ** 64n }, 0)); // {"capacity":18446744073709551616}
 * ```
 */
export function toJson(value: unknown, indent = 2): string {
  const raw = (JSON as unknown as RawJson).rawJSON;
  return JSON.stringify(
    value,
    (_k, v) => {
      if (typeof v === "bigint") return raw(v.toString());
      if (v instanceof Uint8Array) {
        return Array.from(v, (b) => b.toString(16).padStart(2, "0")).join("");
      }
      return v;
    },
    indent,
  );
}

/**
 * Print a command's result: `value` as JSON with `--json`, else the human
 * `lines` (a string or one string per line).
 */
export function report(ctx: CliContext, value: unknown, lines: string | string[]): void {
  if (ctx.json) {
    ctx.io.stdout(toJson(value) + "\n");
    return;
  }
  if (ctx.verbosity === 0) return;
  const text = Array.isArray(lines) ? lines.join("\n") : lines;
  if (text.length > 0) ctx.io.stdout(text.endsWith("\n") ? text : text + "\n");
}

/** A note for people on stderr; silent with `--json` or `--quiet`. */
export function note(ctx: CliContext, text: string): void {
  if (!ctx.json && ctx.verbosity > 0) ctx.io.stderr(text + "\n");
}

/** A warning on stderr (`warning: ...`); shown with `--quiet` too, not with `--json`. */
export function warn(ctx: CliContext, text: string): void {
  if (!ctx.json) ctx.io.stderr(`warning: ${text}\n`);
}

/** A detail line on stderr, only with `--verbose`. */
export function detail(ctx: CliContext, text: string): void {
  if (!ctx.json && ctx.verbosity > 1) ctx.io.stderr(text + "\n");
}

/** `key=value` lines, upstream's output style, in the order given. */
export function keyValues(obj: Record<string, unknown>): string[] {
  return Object.entries(obj).map(([k, v]) =>
    `${k}=${typeof v === "object" && v !== null ? toJson(v, 0) : String(v)}`
  );
}

/** An aligned text table, with a header row. */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]))).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

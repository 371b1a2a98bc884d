/**
 * Helpers of the CLI tests: run the command in-process with captured output.
 *
 * @module
 */

import { run } from "../../../cli/main.ts";
import type { CliIo } from "../../../cli/_output.ts";

/** The outcome of one in-process run. */
export interface RunResult {
  /** Exit code `run` returned. */
  code: number;
  /** Everything written to stdout. */
  stdout: string;
  /** Everything written to stderr. */
  stderr: string;
}

/** Run `blksnap argv...` in this process, capturing its output. */
export async function cli(...argv: string[]): Promise<RunResult> {
  let stdout = "";
  let stderr = "";
  const io: CliIo = {
    stdout: (s) => {
      stdout += s;
    },
    stderr: (s) => {
      stderr += s;
    },
    isTerminal: false,
    columns: 100,
  };
  const code = await run(argv, io);
  return { code, stdout, stderr };
}

/** Run with `--json` and parse stdout. */
export async function cliJson(
  ...argv: string[]
): Promise<{ code: number; json: Record<string, unknown>; stderr: string }> {
  const r = await cli("--json", ...argv);
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(r.stdout);
  } catch {
    throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\nstderr: ${r.stderr}`);
  }
  return { code: r.code, json, stderr: r.stderr };
}

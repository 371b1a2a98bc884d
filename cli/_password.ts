/**
 * Where the CLI gets the passphrase of an encrypted repository, first found
 * wins: `--password-file FILE` (its first line), `$BLKSNAP_PASSWORD`, then a
 * prompt on the terminal (no echo). Without any of them (cron, CI) the
 * command fails with one clear error instead of waiting.
 *
 * @module
 */

import { RepoError } from "../lib/backup/errors.ts";
import { DEFAULT_SCRYPT, type ScryptParams } from "../lib/backup/crypto/keys.ts";
import { safeEnv } from "./_repo.ts";

let passwordFile: string | undefined;

/** Set by the root `--password-file` option. */
export function setPasswordFile(path: string | undefined): void {
  passwordFile = path;
}

/** The first line of `path`, without its line end. */
export async function readPasswordFile(path: string): Promise<string> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    throw new RepoError("KEY", `Cannot read the password file ${path}: ${(e as Error).message}`, {
      cause: e,
    });
  }
  return text.split(/\r?\n/)[0];
}

/** Read a line from the terminal without echoing it. */
async function promptHidden(question: string): Promise<string> {
  const enc = new TextEncoder();
  await Deno.stderr.write(enc.encode(question));
  Deno.stdin.setRaw(true);
  const bytes: number[] = [];
  const buf = new Uint8Array(1);
  try {
    for (;;) {
      const n = await Deno.stdin.read(buf);
      if (n === null || buf[0] === 13 || buf[0] === 10) break;
      if (buf[0] === 3) throw new RepoError("KEY", "Interrupted at the passphrase prompt");
      if (buf[0] === 127 || buf[0] === 8) bytes.pop();
      else bytes.push(buf[0]);
    }
  } finally {
    Deno.stdin.setRaw(false);
    await Deno.stderr.write(enc.encode("\n"));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}

/**
 * The passphrase: `--password-file`, `$BLKSNAP_PASSWORD`, or asked on the
 * terminal (twice with `confirm`, for a new one).
 */
export async function readPassphrase(
  what = "Repository passphrase",
  options: { confirm?: boolean; file?: string; envName?: string } = {},
): Promise<string> {
  // The root --password-file is the repository's passphrase; a new or a target passphrase
  // (another envName) comes from its own file or variable only.
  const file = options.file ?? (options.envName === undefined ? passwordFile : undefined);
  if (file !== undefined) return await readPasswordFile(file);
  const env = safeEnv(options.envName ?? "BLKSNAP_PASSWORD");
  if (env !== undefined) return env;
  if (!Deno.stdin.isTerminal()) {
    throw new RepoError(
      "KEY",
      `${what} needed: set ${options.envName ?? "BLKSNAP_PASSWORD"} or give --password-file ` +
        "(no terminal to ask on)",
    );
  }
  const first = await promptHidden(`${what}: `);
  if (options.confirm) {
    const again = await promptHidden(`${what} (again): `);
    if (again !== first) throw new RepoError("KEY", "The two passphrases differ");
  }
  return first;
}

/** The scrypt cost of `--kdf-log2n n` (N = 2^n, r = 8, p = 1), or the default. */
export function scryptOf(log2n: number | undefined): ScryptParams {
  if (log2n === undefined) return DEFAULT_SCRYPT;
  if (log2n < 10) throw new RepoError("INVALID", `--kdf-log2n ${log2n} is below 10`);
  return { N: 2 ** log2n, r: 8, p: 1 };
}

/**
 * The `-r, --repo <path>` option shared by the repository commands, with
 * `$BLKSNAP_REPO` as its fallback.
 *
 * @module
 */

import { Option } from "../deps.ts";
import { Repository } from "../lib/backup/mod.ts";
import { UsageError } from "./_exit.ts";
import { readPassphrase } from "./_password.ts";

/** The `-r, --repo <path>` option. */
export function repoOption(): Option<"-r, --repo <path>"> {
  return new Option(
    "-r, --repo <path>",
    "backup repository: a directory or s3://bucket/prefix (default: $BLKSNAP_REPO)",
  );
}

/** Read an environment variable; undefined if unset or not permitted. */
export function safeEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** The repository path from `--repo` or `$BLKSNAP_REPO`; a usage error if neither. */
export function repoPath(option: string | undefined): string {
  const path = option ?? safeEnv("BLKSNAP_REPO");
  if (path === undefined || path === "") {
    throw new UsageError("no repository: give -r/--repo <path> or set BLKSNAP_REPO");
  }
  return path;
}

/**
 * Open the repository at `path` (a directory or `s3://bucket/prefix`); an
 * encrypted one asks for its passphrase (see cli/_password.ts), a plain one
 * never does.
 */
export async function openRepo(path: string): Promise<Repository> {
  return await Repository.open(path, { passphrase: () => readPassphrase() });
}

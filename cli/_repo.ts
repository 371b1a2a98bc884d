/**
 * The `-r, --repo <path>` option shared by the repository commands, with
 * `$BLKSNAP_REPO` as its fallback.
 *
 * @module
 */

import { Option } from "../deps.ts";
import { UsageError } from "./_exit.ts";

/** The `-r, --repo <path>` option. */
export function repoOption(): Option<"-r, --repo <path>"> {
  return new Option("-r, --repo <path>", "backup repository directory (default: $BLKSNAP_REPO)");
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

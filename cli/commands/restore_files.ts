/**
 * `blksnap restore ID TARGET --files PATH...`: the file-level branch of
 * `restore`, copying chosen files out of a briefly mounted backup point.
 *
 * @module
 */

import { restoreFiles } from "../../lib/nbd/mod.ts";
import { type CliContext, note, report, table } from "../_output.ts";
import { formatBytes } from "../_size.ts";
import { serverLaunch } from "./mount.ts";

/** Copy `files` of backup `spec` (an id, its last 8 hex digits, or latest) into directory `target`. */
export async function restoreFilesAction(
  ctx: CliContext,
  repo: string,
  spec: string,
  target: string,
  files: string[],
  partition: number | undefined,
): Promise<void> {
  const { id, launch } = await serverLaunch(repo, spec);
  const r = await restoreFiles(repo, id, target, files, {
    ...launch,
    partition,
    log: (line) => note(ctx, `blksnap restore: ${line}`),
  });
  report(ctx, r, [
    `restored ${r.paths.length} path(s) of backup ${id} into ${target}`,
    ...table(
      ["PATH", "KIND", "FILES", "SIZE"],
      r.paths.map((p) => [`/${p.path}`, p.kind, String(p.files), formatBytes(p.bytes)]),
    ),
  ]);
}

/**
 * File-level restore: mount a backup point read-only for a moment (see
 * {@linkcode mountBackupPoint}), copy the chosen files and directories out
 * with `cp -a` (modes, owners, times and symbolic links kept), and
 * unmount it again, whatever happens. Nothing in the target is overwritten.
 *
 * @module
 */

import { dirname, join, normalize, resolve } from "node:path";
import {
  DEFAULT_RUN_DIR,
  exists,
  mountBackupPoint,
  MountError,
  unmountBackupPoint,
} from "./mount.ts";

/** Options of {@linkcode restoreFiles}. */
export interface RestoreFilesOptions {
  /** The command that serves the backup point (see {@linkcode mountBackupPoint}). */
  serveCommand: string[];
  /** Environment variables added for the server (see {@linkcode mountBackupPoint}). */
  serveEnv?: Record<string, string>;
  /** The partition (1-based) holding the files. */
  partition?: number;
  /** Sockets, logs, records and the temporary mount point. @default "/run/blksnap" */
  runDir?: string;
  /** Progress lines for the operator. */
  log?: (message: string) => void;
}

/** One path restored. */
export interface RestoredPath {
  /** The path inside the backed-up file system (relative to its root). */
  path: string;
  /** `file`, `directory` or `symlink` (and so on). */
  kind: string;
  /** Regular files copied (1 for a file, all of them for a directory). */
  files: number;
  /** Their bytes. */
  bytes: number;
}

/** The result of {@linkcode restoreFiles}. */
export interface RestoreFilesResult {
  /** The backup the files came from. */
  backupId: string;
  /** The directory they were copied into. */
  target: string;
  /** What was copied. */
  paths: RestoredPath[];
}

/**
 * A path inside the file system, relative to its root: a leading `/` is
 * dropped, `.` parts are removed; `..` parts and the root itself are refused.
 */
export function relativeInside(path: string): string {
  const rel = normalize(path.replace(/^\/+/, ""));
  if (rel === "." || rel === "" || rel.split("/").includes("..")) {
    throw new RangeError(`${JSON.stringify(path)} is not a path inside the file system`);
  }
  return rel.replace(/\/+$/, "");
}

async function tally(path: string): Promise<{ kind: string; files: number; bytes: number }> {
  const st = await Deno.lstat(path);
  if (st.isSymlink) return { kind: "symlink", files: 0, bytes: 0 };
  if (st.isFile) return { kind: "file", files: 1, bytes: st.size };
  if (!st.isDirectory) return { kind: "special", files: 0, bytes: 0 };
  let files = 0;
  let bytes = 0;
  for await (const e of Deno.readDir(path)) {
    const t = await tally(join(path, e.name));
    files += t.files;
    bytes += t.bytes;
  }
  return { kind: "directory", files, bytes };
}

/**
 * Copy `paths` (inside the backed-up file system) of backup `backupId` into
 * directory `target` (created if missing), each under its own relative path
 * (`etc/fstab` lands in `target/etc/fstab`). Every path is checked before
 * anything is copied; a missing one fails the restore with nothing copied.
 *
 * @example
 * ```ts ignore
 * import { restoreFiles } from "./file_restore.ts";
 * const id = "20261124T031600123Z-0a1b2c3d";
 * const r = await restoreFiles("/backup/repo", id, "/var/tmp/restored", ["/etc/fstab", "/home/ann"], {
 *   serveCommand: ["blksnap", "serve", "-r", "/backup/repo", id],
 * });
 * console.log(r.paths.map((p) => `${p.path}: ${p.files} files`));
 * ```
 */
export async function restoreFiles(
  repo: string,
  backupId: string,
  target: string,
  paths: string[],
  options: RestoreFilesOptions,
): Promise<RestoreFilesResult> {
  if (paths.length === 0) throw new RangeError("no paths to restore");
  const rels = paths.map(relativeInside);
  const runDir = options.runDir ?? DEFAULT_RUN_DIR;
  await Deno.mkdir(runDir, { recursive: true, mode: 0o700 });
  const mnt = await Deno.makeTempDir({ dir: runDir, prefix: "files-" });
  try {
    await mountBackupPoint(repo, backupId, mnt, {
      serveCommand: options.serveCommand,
      serveEnv: options.serveEnv,
      partition: options.partition,
      runDir,
      log: options.log,
    });
    try {
      const found: RestoredPath[] = [];
      const missing: string[] = [];
      for (const rel of rels) {
        try {
          found.push({ path: rel, ...(await tally(join(mnt, rel))) });
        } catch (e) {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
          missing.push(rel);
        }
      }
      if (missing.length > 0) {
        throw new MountError(
          `not in backup ${backupId}: ${missing.map((m) => `/${m}`).join(", ")}`,
        );
      }
      // Nothing already in the target is overwritten: a restore never merges silently.
      const abs = resolve(target);
      const clashes = [];
      for (const rel of rels) if (await exists(join(abs, rel))) clashes.push(join(abs, rel));
      if (clashes.length > 0) {
        throw new MountError(
          `would overwrite ${clashes.join(", ")}: restore into an empty directory`,
        );
      }
      for (const rel of rels) {
        await Deno.mkdir(dirname(join(abs, rel)), { recursive: true });
        const out = await new Deno.Command("cp", {
          args: ["-a", "--", join(mnt, rel), join(abs, rel)],
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        if (!out.success) {
          throw new MountError(
            `copying /${rel} out of the backup failed: ${
              new TextDecoder().decode(out.stderr).trim()
            }`,
          );
        }
      }
      return { backupId, target, paths: found };
    } finally {
      await unmountBackupPoint(mnt, { runDir });
    }
  } finally {
    await Deno.remove(mnt).catch(() => {});
  }
}

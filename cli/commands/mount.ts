/**
 * `blksnap mount` and `blksnap umount`: a backup point mounted read-only
 * through the kernel's NBD driver, served in the background, and taken down
 * again leaving no device, socket or process.
 *
 * @module
 */

import { Command, type CommandUnknownOpts, Option } from "../../deps.ts";
import { Repository, resolveBackupId } from "../../lib/backup/mod.ts";
import { mountBackupPoint, unmountBackupPoint } from "../../lib/nbd/mod.ts";
import { readPassphrase } from "../_password.ts";
import { type CliContext, keyValues, note, report } from "../_output.ts";
import { repoOption, repoPath } from "../_repo.ts";
import { parseCount } from "../_size.ts";

/** How the background server is started: this CLI's `serve` (mount appends `--socket`). */
export interface ServerLaunch {
  /** The command line. */
  serveCommand: string[];
  /** Its added environment: the passphrase of an encrypted repository, asked here once. */
  serveEnv: Record<string, string>;
}

/**
 * Resolve `spec` (a backup id, its last 8 hex digits, or `latest`) in `repo`,
 * check that the backup opens (asking for the passphrase of an encrypted
 * repository now, on this terminal) and say how to start its server in the
 * background, where nothing can be asked. The passphrase goes to the server
 * in its environment (readable only by its user and root).
 */
export async function serverLaunch(
  repo: string,
  spec: string,
): Promise<{ id: string; launch: ServerLaunch }> {
  let passphrase: string | undefined;
  const r = await Repository.open(repo, {
    passphrase: async () => (passphrase = await readPassphrase()),
  });
  const id = await resolveBackupId(r, spec);
  await r.readManifest(id);
  const main = new URL("../main.ts", import.meta.url).href;
  return {
    id,
    launch: {
      serveCommand: [Deno.execPath(), "run", "-A", main, "serve", "-r", repo, id],
      serveEnv: passphrase === undefined ? {} : { BLKSNAP_PASSWORD: passphrase },
    },
  };
}

/** The `mount` command. */
export function mountCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("mount")
    .description(
      "mount backup <id> read-only on <dir> through NBD (loads nbd, serves the backup in the " +
        "background, connects /dev/nbdN with nbd-client, mounts ext4 with noload and XFS with " +
        "norecovery,nouuid); undo with umount",
    )
    .argument("<id>", "backup id, its last 8 hex digits, or latest (see list)")
    .argument("<dir>", "an existing directory to mount on")
    .addOption(repoOption())
    .addOption(
      new Option("--partition <n>", "mount this partition (1-based) of the backed-up device")
        .argParser((s) => parseCount(s, 255)),
    )
    .action(async (spec, dir, opts) => {
      const repo = repoPath(opts.repo);
      const { id, launch } = await serverLaunch(repo, spec);
      const m = await mountBackupPoint(repo, id, dir, {
        ...launch,
        partition: opts.partition,
        log: (line) => note(ctx, `blksnap mount: ${line}`),
      });
      report(ctx, m, [
        `mounted backup ${id} on ${m.dir} (read-only)`,
        ...keyValues({
          device: m.mountedDevice,
          filesystem: m.fsType ?? "detected by the kernel",
          options: m.options.join(","),
          server_pid: m.pid,
          socket: m.socket,
        }),
        `unmount with: blksnap umount ${m.dir}`,
      ]);
    });
}

/** The `umount` command. */
export function umountCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("umount")
    .description(
      "unmount a backup point mounted with blksnap mount: unmount, disconnect the NBD device, " +
        "stop its server, remove its socket",
    )
    .argument("<dir>", "the mount point")
    .action(async (dir) => {
      const m = await unmountBackupPoint(dir);
      report(
        ctx,
        { ...m, unmounted: true },
        `unmounted backup ${m.backupId} from ${m.dir}; ${m.nbdDevice} disconnected, server stopped`,
      );
    });
}

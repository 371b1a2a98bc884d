/**
 * The serve flow: open a backup point of a repository, optionally under a
 * copy-on-write overlay, and serve it over NBD until told to stop. What
 * `blksnap serve` runs.
 *
 * @module
 */

import type { Repository } from "../backup/repository.ts";
import { BackupPointSource } from "./backup_source.ts";
import type { BlockSource } from "./block_source.ts";
import { OverlaySource } from "./overlay.ts";
import { type NbdListenAddress, NbdServer } from "./server.ts";

/** Options of {@linkcode serveBackupPoint}. */
export interface ServeOptions {
  /** Take writes into this copy-on-write file (created if missing); read-only without it. */
  overlay?: string;
  /** Memory for decoded chunks, in bytes. @default 67108864 */
  cacheBytes?: number;
  /** Chunks read ahead of a sequential reader. @default 4 */
  readAhead?: number;
  /** Connections, failed reads and protocol violations, one line each. */
  log?: (message: string) => void;
}

/** A backup point being served; stop it with {@linkcode ServedBackupPoint.close}. */
export interface ServedBackupPoint {
  /** The server. */
  server: NbdServer;
  /** The backup point read from the repository. */
  backup: BackupPointSource;
  /** The overlay taking writes, when one was given. */
  overlay: OverlaySource | null;
  /** The URI clients (qemu, nbdinfo, nbdcopy) connect to. */
  uri: string;
  /** Stop serving, flush the overlay, release everything. Idempotent. */
  close(): Promise<void>;
}

/** The NBD URI of a listen address (`nbd+unix:///?socket=…` or `nbd://127.0.0.1:N`). */
export function nbdUri(address: NbdListenAddress): string {
  if ("socket" in address) return `nbd+unix:///?socket=${address.socket}`;
  return `nbd://${address.hostname ?? "127.0.0.1"}:${address.port}`;
}

/**
 * Serve backup `backupId` of `repo` on `address`. The manifest and index are
 * checked before the socket is created; chunks are read (and checked) as
 * clients ask for them. With `overlay`, clients may write; the writes go to
 * that file, never to the repository.
 *
 * @example Serve until SIGTERM
 * ```ts ignore
 * import { Repository } from "../backup/mod.ts";
 * import { serveBackupPoint } from "./serve.ts";
 * const repo = await Repository.open("/backup/repo");
 * const served = await serveBackupPoint(repo, "20261124T031600123Z-0a1b2c3d", {
 *   socket: "/run/blksnap/b.sock",
 * });
 * Deno.addSignalListener("SIGTERM", () => served.close());
 * await served.server.finished;
 * ```
 */
export async function serveBackupPoint(
  repo: Repository,
  backupId: string,
  address: NbdListenAddress,
  options: ServeOptions = {},
): Promise<ServedBackupPoint> {
  const log = options.log ?? (() => {});
  const backup = await BackupPointSource.open(repo, backupId, {
    cacheBytes: options.cacheBytes,
    readAhead: options.readAhead,
    log,
  });
  const overlay = options.overlay === undefined
    ? null
    : await OverlaySource.open(backup, options.overlay, { sourceId: backupId });
  const source: BlockSource = overlay ?? backup;
  let server: NbdServer;
  try {
    server = await NbdServer.listen(address, {
      exports: [{
        name: backupId,
        description: `blksnap backup ${backupId} of ${backup.manifest.device.name}` +
          (overlay ? ` (writes to ${overlay.path})` : " (read-only)"),
        source,
      }],
      log,
    });
  } catch (e) {
    await overlay?.close();
    throw e;
  }
  let closing: Promise<void> | null = null;
  return {
    server,
    backup,
    overlay,
    uri: nbdUri(address),
    close(): Promise<void> {
      closing ??= (async () => {
        await server.close();
        try {
          await overlay?.close();
        } finally {
          await backup.close();
        }
      })();
      return closing;
    },
  };
}

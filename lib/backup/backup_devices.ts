/**
 * Backups of live block devices: {@linkcode backupDevices} takes one snapshot
 * of a group of devices (a `Session`) and runs `backup` for each of them on
 * its snapshot image ({@linkcode SnapshotSource}).
 *
 * @module
 */

import type { SnapshotEvent } from "../snapshot.ts";
import { Session } from "../session.ts";
import { backup, type BackupOptions, type BackupResult } from "./backup.ts";
import { RepoError } from "./errors.ts";
import { deviceIdentity } from "./device_identity.ts";
import type { DeviceIdentity } from "./manifest.ts";
import type { Repository } from "./repository.ts";
import { SnapshotSource } from "./snapshot_source.ts";

/** What {@linkcode backupDevices} hands its hooks for each device. */
export interface TakenDevice {
  /** The device path. */
  device: string;
  /** Its snapshot image (`/dev/blksnap-...`). */
  imagePath: string;
  /** True if this run attached the tracker (its first backup is full). */
  newlyAttached: boolean;
}

/** Options of {@linkcode backupDevices}. */
export interface BackupDevicesOptions extends Omit<BackupOptions, "signal" | "parent"> {
  /** Difference storage of the snapshot: a directory, a regular file or a block device. */
  diffStorage: string;
  /** Most the difference storage may grow to, in bytes. */
  limit: bigint | number;
  /**
   * The identity a device's backups chain by.
   * @default deviceIdentity(device): its stable id (WWN, dm/md UUID, serial, loop backing file), with the path as name
   */
  identity?: (device: string) => DeviceIdentity | Promise<DeviceIdentity>;
  /** Called for every snapshot event (a `corrupted` event also aborts the run). */
  onEvent?: (event: SnapshotEvent) => void;
  /** Called after the take, before any device is read. */
  onTaken?: (devices: TakenDevice[]) => void | Promise<void>;
  /** Called when a device's backup starts. */
  onDevice?: (device: TakenDevice) => void;
  /** Called after every backup, before the snapshot is destroyed (images still readable). */
  beforeDestroy?: (devices: TakenDevice[]) => void | Promise<void>;
  /** Abort the run. */
  signal?: AbortSignal;
  /** Wait step of the background event watcher, in milliseconds. @default 250 */
  pollMs?: number;
}

/** The outcome for one device of {@linkcode backupDevices}. */
export interface DeviceBackupOutcome {
  /** The device path. */
  device: string;
  /** Its snapshot image while the snapshot existed. */
  imagePath: string;
  /** True if this run attached the tracker. */
  newlyAttached: boolean;
  /** The backup written, if it succeeded. */
  result?: BackupResult;
  /** Why it failed, if it did (no backup of this device was written). */
  error?: unknown;
}

/** The result of {@linkcode backupDevices}. */
export interface BackupDevicesResult {
  /** Id of the snapshot the backups were read from (destroyed now). */
  snapshotId: string;
  /** One entry per device, in the order given. */
  devices: DeviceBackupOutcome[];
  /** Snapshot events seen during the run. */
  events: SnapshotEvent[];
  /** True if every device was backed up. */
  ok: boolean;
}

/**
 * Back up a group of live block devices from one snapshot taken at one
 * instant: attach trackers where needed, create and take the snapshot
 * (a {@linkcode Session}), then for each device run {@linkcode backup} on its
 * image with its CBT map (full or incremental as the CBT cursor decides),
 * and destroy the snapshot. If the snapshot is corrupted (its difference
 * storage overflowed) the running backup is aborted, and a backup that
 * finished is removed again, so an overflow never leaves a backup behind;
 * the next run chains to the last good backup. One device failing does not
 * stop the others; see {@linkcode BackupDevicesResult.ok}.
 *
 * Throws only when the snapshot cannot be set up (a `BlksnapError`).
 *
 * @example Nightly run of two devices
 * ```ts ignore
 * import { backupDevices, Repository } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * const r = await backupDevices(["/dev/vdb", "/dev/vdc"], repo, {
 *   diffStorage: "/var/tmp",
 *   limit: 4n << 30n,
 * });
 * for (const d of r.devices) console.log(d.device, d.result?.decision.reason ?? d.error);
 * ```
 */
export async function backupDevices(
  devices: readonly string[],
  repo: Repository,
  options: BackupDevicesOptions,
): Promise<BackupDevicesResult> {
  const abort = new AbortController();
  const onOuterAbort = () => abort.abort(options.signal?.reason);
  options.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const events: SnapshotEvent[] = [];
  const outcomes: DeviceBackupOutcome[] = [];
  let snapshotId = "";
  try {
    options.signal?.throwIfAborted();
    await using session = await Session.start({
      devices,
      diffStorage: options.diffStorage,
      limit: options.limit,
      pollMs: options.pollMs ?? 250,
      onEvent: (event) => {
        events.push(event);
        if (event.type === "corrupted") {
          abort.abort(
            new RepoError(
              "SOURCE",
              `Snapshot corrupted (${event.error}) on ${event.device.major}:${event.device.minor}`,
            ),
          );
        }
        options.onEvent?.(event);
      },
    });
    snapshotId = session.snapshot.id;
    const attached = new Set(session.newlyAttached);
    const taken: TakenDevice[] = devices.map((device) => ({
      device,
      imagePath: session.imagePath(device),
      newlyAttached: attached.has(device),
    }));
    await options.onTaken?.(taken);
    for (const t of taken) {
      const outcome: DeviceBackupOutcome = { ...t };
      outcomes.push(outcome);
      try {
        // An abort before this device started still goes through backup(),
        // which fails at once and records the failed run (the next backup
        // of the device is then full).
        options.onDevice?.(t);
        using source = await SnapshotSource.open(
          session,
          t.device,
          await (options.identity ?? deviceIdentity)(t.device),
        );
        const { identity: _i, diffStorage: _d, limit: _l, ...rest } = options;
        const result = await backup(source, repo, { ...rest, signal: abort.signal });
        if (session.corrupted) {
          // Reads after a corruption fail with EIO, so a finished backup read
          // only good data; it is removed anyway so that an overflowed
          // snapshot never yields a backup.
          await repo.removeBackup(result.manifest.id);
          throw new RepoError(
            "SOURCE",
            `Snapshot of ${t.device} was corrupted during the backup; backup ` +
              `${result.manifest.id} removed`,
          );
        }
        outcome.result = result;
      } catch (e) {
        // A read that failed with EIO because the snapshot was corrupted is
        // reported as the corruption.
        outcome.error = abort.signal.aborted && abort.signal.reason instanceof RepoError &&
            !(e instanceof RepoError && e.code === "SOURCE" && /corrupted/.test(e.message))
          ? abort.signal.reason
          : e;
      }
    }
    await options.beforeDestroy?.(taken);
  } finally {
    options.signal?.removeEventListener("abort", onOuterAbort);
  }
  return {
    snapshotId,
    devices: outcomes,
    events,
    ok: outcomes.length === devices.length && outcomes.every((o) => o.result !== undefined),
  };
}

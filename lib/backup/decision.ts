/**
 * The pure full-versus-incremental decision from the CBT cursor.
 *
 * @module
 */

import type { CbtCursor, VerificationState } from "./manifest.ts";

/** The parent backup as the decision sees it. */
export interface DecisionParent {
  /** Backup id. */
  id: string;
  /** Capacity the parent was taken at. */
  capacity: bigint;
  /** Chunk size of the parent. */
  chunkSize: number;
  /** CBT cursor of the parent, or null if it was taken without a tracker. */
  cbt: CbtCursor | null;
  /** Verification state of the parent. */
  verification: Pick<VerificationState, "state">;
}

/** Everything {@linkcode decideBackupMode} looks at. */
export interface DecisionInput {
  /** Repository chunk size in bytes. */
  chunkSize: number;
  /** Capacity of the source now. */
  capacity: bigint;
  /** The source's CBT state now, or null when the device has no tracker. */
  cbt: (CbtCursor & { deviceCapacity?: bigint }) | null;
  /** The parent backup, or null when there is none. */
  parent: DecisionParent | null;
  /** Why there is no usable parent, when `parent` is null (e.g. "backup X not found"). */
  parentProblem?: string;
  /** Bytes CBT reports changed since the parent's changes number, when known. */
  changedBytes?: bigint;
  /** The last run of this device after the parent failed; its message. */
  failedRun?: { id: string; error: string } | null;
  /** Force a full backup. @default false */
  forceFull?: boolean;
  /** Require the parent to have passed a deep verify. @default false */
  requireVerifiedParent?: boolean;
}

/** The outcome of {@linkcode decideBackupMode}. */
export interface Decision {
  /** Full or incremental. */
  mode: "full" | "incremental";
  /** Why, in one sentence for operators. */
  reason: string;
}

function full(reason: string): Decision {
  return { mode: "full", reason };
}

function isPowerOfTwo(n: number): boolean {
  return Number.isInteger(n) && n > 0 && (n & (n - 1)) === 0 && n <= 2 ** 30;
}

/**
 * Decide full or incremental. Any mismatch between the source's CBT state
 * and the parent's cursor gives a full backup with the reason; pure.
 *
 * @example A changed generation forces a full backup
 * ```ts
 * import { decideBackupMode } from "./decision.ts";
 * const cursor = { generationId: "a", changesNumber: 3, blockSize: 65536 };
 * const d = decideBackupMode({
 *   chunkSize: 1 << 20,
 *   capacity: 1n << 30n,
 *   cbt: { ...cursor, generationId: "b", changesNumber: 4 },
 *   parent: { id: "p", capacity: 1n << 30n, chunkSize: 1 << 20, cbt: cursor, verification: { state: "none" } },
 * });
 * console.log(d.mode, d.reason); // full, CBT generation changed ...
 * ```
 */
export function decideBackupMode(input: DecisionInput): Decision {
  const { parent, cbt } = input;
  if (input.forceFull) return full("full backup requested");
  if (parent === null) return full(input.parentProblem ?? "no previous backup of this device");
  if (cbt === null) return full("the device has no CBT tracker");
  if (parent.cbt === null) return full(`parent ${parent.id} was taken without CBT`);
  if (cbt.deviceCapacity !== undefined && cbt.deviceCapacity !== input.capacity) {
    return full(
      `CBT map covers ${cbt.deviceCapacity} bytes but the device has ${input.capacity}`,
    );
  }
  if (parent.capacity !== input.capacity) {
    return full(`capacity changed from ${parent.capacity} to ${input.capacity} bytes`);
  }
  if (parent.chunkSize !== input.chunkSize) {
    return full(`chunk size changed from ${parent.chunkSize} to ${input.chunkSize}`);
  }
  if (!isPowerOfTwo(cbt.blockSize)) {
    return full(`CBT block size ${cbt.blockSize} is not a power of two`);
  }
  if (parent.cbt.blockSize !== cbt.blockSize) {
    return full(`CBT block size changed from ${parent.cbt.blockSize} to ${cbt.blockSize}`);
  }
  if (parent.cbt.generationId !== cbt.generationId) {
    return full(
      `CBT generation changed from ${parent.cbt.generationId} to ${cbt.generationId} ` +
        "(tracker attached anew, reset, or changes number wrapped)",
    );
  }
  if (!Number.isInteger(cbt.changesNumber) || cbt.changesNumber < parent.cbt.changesNumber) {
    return full(
      `CBT changes number went back from ${parent.cbt.changesNumber} to ${cbt.changesNumber}`,
    );
  }
  if (
    cbt.changesNumber === parent.cbt.changesNumber && input.changedBytes !== undefined &&
    input.changedBytes > 0n
  ) {
    return full(
      `CBT changes number is still ${cbt.changesNumber} but the map reports changes after it`,
    );
  }
  if (parent.verification.state === "failed") {
    return full(`parent ${parent.id} failed verification`);
  }
  if (input.requireVerifiedParent && parent.verification.state !== "ok") {
    return full(`parent ${parent.id} is not verified`);
  }
  if (input.failedRun) {
    return full(`previous run ${input.failedRun.id} failed: ${input.failedRun.error}`);
  }
  return {
    mode: "incremental",
    reason: `CBT generation ${cbt.generationId} unchanged, changes number ` +
      `${parent.cbt.changesNumber} -> ${cbt.changesNumber}, parent ${parent.id}`,
  };
}

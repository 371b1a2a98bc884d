/**
 * A test seam, not part of the public API: a {@linkcode RepoFs} that counts
 * the mutating steps of a flow and fails at a chosen one, as a crash, as
 * `ENOSPC`, or once. The crash tests run every flow failing at every step.
 *
 * @module
 */

import type { RepoFs, RepoStat, RepoWriteOptions } from "./fs.ts";

/** How {@linkcode FaultFs} fails at its chosen step. */
export type FaultMode =
  /** Throw at step k and at every later mutating step, as if the process died there. */
  | "crash"
  /** Throw an `ENOSPC` error at step k and at every later write; removals still work. */
  | "enospc"
  /** Throw at step k only. */
  | "once";

/** Options of {@linkcode FaultFs}. */
export interface FaultFsOptions {
  /** The 1-based mutating step to fail at; 0 or absent never fails. @default 0 */
  failAt?: number;
  /** How to fail. @default "crash" */
  mode?: FaultMode;
}

/** The error {@linkcode FaultFs} throws for an injected crash. */
export class InjectedFault extends Error {
  /** Always `"InjectedFault"`. */
  override name = "InjectedFault";
  /** The step that failed. */
  readonly step: number;
  /** Build the error for `step` and operation `op`. */
  constructor(step: number, op: string) {
    super(`Injected fault at step ${step} (${op})`);
    this.step = step;
  }
}

/** An `ENOSPC` error shaped like the one Deno throws. */
export function enospcError(path: string): Error {
  const e = new Error(`No space left on device (os error 28): ${path}`);
  (e as Error & { code: string }).code = "ENOSPC";
  return e;
}

/**
 * A {@linkcode RepoFs} wrapper that counts mutating steps (`writeFile`,
 * its `fsync`, `rename`, `link`, `syncDir`, `remove`, `mkdir`) and fails at step `failAt`.
 *
 * @example Count the steps of a flow, then fail at each one
 * ```ts
 * import { DenoFs } from "./fs.ts";
 * import { FaultFs } from "./_fault_fs.ts";
 * const counter = new FaultFs(new DenoFs());
 * // ... run a flow with counter ...
 * const crashAt3 = new FaultFs(new DenoFs(), { failAt: 3, mode: "crash" });
 * console.log(counter.steps, crashAt3.failed);
 * ```
 */
export class FaultFs implements RepoFs {
  /** Mutating steps performed or attempted so far. */
  steps = 0;
  /** True once the fault has fired. */
  failed = false;
  /** Operation log: one `"op path"` line per mutating step. */
  readonly log: string[] = [];
  readonly #inner: RepoFs;
  readonly #failAt: number;
  readonly #mode: FaultMode;

  /** Wrap `inner`. */
  constructor(inner: RepoFs, options: FaultFsOptions = {}) {
    this.#inner = inner;
    this.#failAt = options.failAt ?? 0;
    this.#mode = options.mode ?? "crash";
  }

  #step(op: string, path: string): void {
    this.steps++;
    this.log.push(`${op} ${path}`);
    const hit = this.#failAt > 0 && this.steps >= this.#failAt;
    if (!hit) return;
    if (this.#mode === "once" && this.steps !== this.#failAt) return;
    if (this.#mode === "enospc") {
      if (op === "remove" || op === "syncDir" || op === "fsync") return;
      this.failed = true;
      throw enospcError(path);
    }
    this.failed = true;
    throw new InjectedFault(this.steps, op);
  }

  /** Read a whole file (not counted). */
  readFile(path: string): Promise<Uint8Array> {
    return this.#inner.readFile(path);
  }
  /** Read a whole file into `into` when it fits (not counted). */
  readFileInto(path: string, into: Uint8Array): Promise<Uint8Array> {
    return this.#inner.readFileInto?.(path, into) ?? this.#inner.readFile(path);
  }
  /** Stat (not counted). */
  stat(path: string): Promise<RepoStat | null> {
    return this.#inner.stat(path);
  }
  /** List a directory (not counted). */
  readDir(path: string): Promise<string[]> {
    return this.#inner.readDir(path);
  }
  /** Counted step; with `sync`, the `fsync` is a second step. */
  async writeFile(path: string, data: Uint8Array, options?: RepoWriteOptions): Promise<void> {
    this.#step("writeFile", path);
    await this.#inner.writeFile(path, data, { ...options, sync: false });
    if (options?.sync) await this.syncFile(path);
  }
  /** Counted step. */
  async syncFile(path: string): Promise<void> {
    this.#step("fsync", path);
    await this.#inner.syncFile(path);
  }
  /** Counted step. */
  async rename(from: string, to: string): Promise<void> {
    this.#step("rename", to);
    await this.#inner.rename(from, to);
  }
  /** Counted step. */
  async link(from: string, to: string): Promise<void> {
    this.#step("link", to);
    await this.#inner.link(from, to);
  }
  /** Counted step. */
  async syncDir(path: string): Promise<void> {
    this.#step("syncDir", path);
    await this.#inner.syncDir(path);
  }
  /** Counted step. */
  async remove(path: string): Promise<void> {
    this.#step("remove", path);
    await this.#inner.remove(path);
  }
  /** Counted step. */
  async mkdir(path: string): Promise<void> {
    this.#step("mkdir", path);
    await this.#inner.mkdir(path);
  }
}

/**
 * The file-system seam of the backup repository. Every repository file
 * operation goes through a {@linkcode RepoFs}, so tests can count the
 * mutating steps of a flow and inject a failure (a crash or `ENOSPC`) at any
 * one of them.
 *
 * @module
 */

/** What {@linkcode RepoFs.stat} reports about a path. */
export interface RepoStat {
  /** Size in bytes. */
  size: number;
  /** Modification time in milliseconds since the epoch (0 if unknown). */
  mtimeMs: number;
  /** A regular file. */
  isFile: boolean;
  /** A directory. */
  isDirectory: boolean;
}

/** Options of {@linkcode RepoFs.writeFile}. */
export interface RepoWriteOptions {
  /** Fail with `AlreadyExists` if the path exists (`O_CREAT|O_EXCL`). @default false */
  createNew?: boolean;
  /** `fsync` the file before closing it. @default false */
  sync?: boolean;
}

/**
 * The operations the repository performs on its directory. Mutating
 * operations are the steps counted by {@linkcode FaultFs}.
 */
export interface RepoFs {
  /** Read a whole file. Callers check the size with {@linkcode RepoFs.stat} first. */
  readFile(path: string): Promise<Uint8Array>;
  /** Stat a path; `null` when it does not exist. */
  stat(path: string): Promise<RepoStat | null>;
  /** Names in a directory; empty when it does not exist. */
  readDir(path: string): Promise<string[]>;
  /** Create or replace a file with `data`. */
  writeFile(path: string, data: Uint8Array, options?: RepoWriteOptions): Promise<void>;
  /** `fsync` a file by path. */
  syncFile(path: string): Promise<void>;
  /** Rename atomically within one file system. */
  rename(from: string, to: string): Promise<void>;
  /** Hard-link `from` as `to`; fails with `AlreadyExists` if `to` exists (atomic create). */
  link(from: string, to: string): Promise<void>;
  /** `fsync` a directory so renames and removals in it are durable. */
  syncDir(path: string): Promise<void>;
  /** Remove a file; no error when it is already gone. */
  remove(path: string): Promise<void>;
  /** Create a directory (and its parents); no error if it exists. */
  mkdir(path: string): Promise<void>;
}

/** The real file system through Deno's APIs. */
export class DenoFs implements RepoFs {
  /** Read a whole file. */
  readFile(path: string): Promise<Uint8Array> {
    return Deno.readFile(path);
  }

  /** Stat a path; `null` when it does not exist. */
  async stat(path: string): Promise<RepoStat | null> {
    try {
      const st = await Deno.stat(path);
      return {
        size: st.size,
        mtimeMs: st.mtime?.getTime() ?? 0,
        isFile: st.isFile,
        isDirectory: st.isDirectory,
      };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return null;
      throw e;
    }
  }

  /** Names in a directory; empty when it does not exist. */
  async readDir(path: string): Promise<string[]> {
    const names: string[] = [];
    try {
      for await (const entry of Deno.readDir(path)) names.push(entry.name);
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return [];
      throw e;
    }
    return names;
  }

  /** Create or replace a file, optionally exclusively and with `fsync`. */
  async writeFile(path: string, data: Uint8Array, options: RepoWriteOptions = {}): Promise<void> {
    const file = await Deno.open(path, {
      write: true,
      create: !options.createNew,
      createNew: options.createNew ?? false,
      truncate: !options.createNew,
    });
    try {
      let done = 0;
      while (done < data.length) done += await file.write(data.subarray(done));
      if (options.sync) await file.sync();
    } finally {
      file.close();
    }
  }

  /** `fsync` a file by path. */
  async syncFile(path: string): Promise<void> {
    const file = await Deno.open(path, { read: true });
    try {
      await file.sync();
    } finally {
      file.close();
    }
  }

  /** Rename atomically. */
  rename(from: string, to: string): Promise<void> {
    return Deno.rename(from, to);
  }

  /** Hard-link `from` as `to`. */
  link(from: string, to: string): Promise<void> {
    return Deno.link(from, to);
  }

  /** `fsync` a directory. */
  async syncDir(path: string): Promise<void> {
    const dir = await Deno.open(path, { read: true });
    try {
      await dir.sync();
    } finally {
      dir.close();
    }
  }

  /** Remove a file; no error when it is already gone. */
  async remove(path: string): Promise<void> {
    try {
      await Deno.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }

  /** Create a directory and its parents. */
  async mkdir(path: string): Promise<void> {
    await Deno.mkdir(path, { recursive: true });
  }
}

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
 * import { DenoFs, FaultFs } from "./fs.ts";
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

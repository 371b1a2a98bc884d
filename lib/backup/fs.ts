/**
 * The file-system seam of the backup repository. Every repository file
 * operation goes through a {@linkcode RepoFs}, so tests can count the
 * mutating steps of a flow and inject a failure (a crash or `ENOSPC`) at any
 * one of them (the private `_fault_fs.ts`).
 *
 * @module
 */

/**
 * Permission bits of repository directories: the repository holds copies of
 * whole disks (password hashes, keys), so only its owner may read it.
 */
export const PRIVATE_DIR_MODE = 0o700;
/** Permission bits of repository files (see {@linkcode PRIVATE_DIR_MODE}). */
export const PRIVATE_FILE_MODE = 0o600;

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
  /** Permission bits (`st_mode & 0o7777`), or null where the storage has none. */
  mode: number | null;
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
 * operations are the steps the tests' fault injector counts.
 */
export interface RepoFs {
  /** Read a whole file. Callers check the size with {@linkcode RepoFs.stat} first. */
  readFile(path: string): Promise<Uint8Array>;
  /**
   * Read a whole file into `into`: the view of `into` that holds it, or a
   * buffer of its own when it does not fit. Where this is missing,
   * {@linkcode RepoFs.readFile} is used. A restore or a verify reads every
   * chunk into a few reused buffers this way: a fresh buffer per chunk cost
   * 30 times the CPU of the read itself in page faults (docs/benchmarks.md).
   */
  readFileInto?(path: string, into: Uint8Array): Promise<Uint8Array>;
  /** Stat a path; `null` when it does not exist. */
  stat(path: string): Promise<RepoStat | null>;
  /** Names in a directory; empty when it does not exist. */
  readDir(path: string): Promise<string[]>;
  /** Create or replace a file with `data`, readable by its owner only (0600). */
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
  /**
   * Create a directory (and its parents); no error if it exists. The
   * directory is made private (0700) whether it is new or not.
   */
  mkdir(path: string): Promise<void>;
}

/** The real file system through Deno's APIs. */
export class DenoFs implements RepoFs {
  /** Read a whole file. */
  readFile(path: string): Promise<Uint8Array> {
    return Deno.readFile(path);
  }

  /** Read a whole file into `into` when it fits, else into a buffer of its own. */
  async readFileInto(path: string, into: Uint8Array): Promise<Uint8Array> {
    using file = await Deno.open(path, { read: true });
    let done = 0;
    while (done < into.length) {
      const n = await file.read(into.subarray(done));
      if (n === null) return into.subarray(0, done);
      done += n;
    }
    // `into` is full: the file may hold more (it grew since it was sized).
    if ((await file.read(new Uint8Array(1))) === null) return into;
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
        mode: st.mode === null ? null : st.mode & 0o7777,
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
      mode: PRIVATE_FILE_MODE, // the umask can only narrow it
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

  /** Create a directory and its parents; make it private (0700) even if it existed. */
  async mkdir(path: string): Promise<void> {
    await Deno.mkdir(path, { recursive: true, mode: PRIVATE_DIR_MODE });
    await Deno.chmod(path, PRIVATE_DIR_MODE);
  }
}

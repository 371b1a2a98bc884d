/**
 * The local-directory backend: each object a file under the repository
 * directory, written crash-safely (temp file created exclusively, data,
 * `fsync`, rename over the name, `fsync` of the directory). Every file
 * operation goes through a {@linkcode RepoFs}, where tests inject faults.
 *
 * @module
 */

import { dirname, join } from "node:path";
import { CorruptError, ioError } from "../errors.ts";
import { randomHex, TEMP_PREFIX } from "../format.ts";
import type { RepoFs } from "../fs.ts";
import type { Backend, PreparedPut, PutOptions, StoredObject } from "./backend.ts";

/**
 * A repository directory as a {@linkcode Backend}.
 *
 * @example
 * ```ts ignore
 * import { DenoFs } from "../fs.ts";
 * import { LocalBackend } from "./local.ts";
 * const b = new LocalBackend("/backup/repo", new DenoFs());
 * for await (const o of b.list("backups/")) console.log(o.name);
 * ```
 */
export class LocalBackend implements Backend {
  /** Always `"local"`. */
  readonly kind = "local";
  /** The directory. */
  readonly location: string;
  /** The CPU count (at least 2): local work is bound by hashing and compression. */
  readonly parallelism: number = Math.max(2, navigator.hardwareConcurrency);
  /** The file-system layer. */
  readonly fs: RepoFs;
  readonly #dirtyDirs = new Set<string>();
  readonly #knownDirs = new Set<string>();

  /** The directory `root`, through `fs`. */
  constructor(root: string, fs: RepoFs) {
    this.location = root;
    this.fs = fs;
  }

  /** The path of object `name`. */
  path(name: string): string {
    return name === "" ? this.location : join(this.location, ...name.split("/"));
  }

  /** The path of `name`. */
  display(name: string): string {
    return this.path(name);
  }

  /** Read `name` if it exists and is at most `max` bytes (checked before reading). */
  async get(name: string, max: number, into?: Uint8Array): Promise<Uint8Array | null> {
    return await readBounded(this.fs, this.path(name), max, into);
  }

  /** Crash-safe replace; with `deferSync` the directory `fsync` waits for {@linkcode flush}. */
  async put(name: string, data: Uint8Array, options: PutOptions = {}): Promise<void> {
    const prepared = await this.prepare(name, data);
    await prepared.commit(options);
  }

  /**
   * The bytes written to a temp file next to `name` and `fsync`ed; commit
   * renames it over `name` and `fsync`s the directory (or defers that to
   * {@linkcode flush}); discard removes it.
   */
  async prepare(
    name: string,
    data: Uint8Array,
  ): Promise<PreparedPut & { commit(options?: PutOptions): Promise<void> }> {
    const path = this.path(name);
    const dir = dirname(path);
    if (!this.#knownDirs.has(dir)) {
      if (!(await this.fs.stat(dir))?.isDirectory) {
        await this.fs.mkdir(dir).catch((e) => {
          throw ioError("mkdir", dir, e);
        });
        this.#dirtyDirs.add(dirname(dir));
      }
      this.#knownDirs.add(dir);
    }
    const tmp = join(dir, `${TEMP_PREFIX}${randomHex(6)}-${path.slice(dir.length + 1)}`);
    const discard = () => this.fs.remove(tmp).catch(() => {});
    try {
      await this.fs.writeFile(tmp, data, { createNew: true, sync: true });
    } catch (e) {
      await discard();
      throw ioError("write", path, e);
    }
    return {
      commit: async (options: PutOptions = {}) => {
        try {
          await this.fs.rename(tmp, path);
          if (options.deferSync) this.#dirtyDirs.add(dir);
          else await this.fs.syncDir(dir);
        } catch (e) {
          await discard();
          throw ioError("write", path, e);
        }
      },
      discard,
    };
  }

  /** Remove `name`. */
  async delete(name: string): Promise<void> {
    const path = this.path(name);
    try {
      await this.fs.remove(path);
    } catch (e) {
      throw ioError("remove", path, e);
    }
    this.#dirtyDirs.add(dirname(path));
  }

  /** Remove each name in turn; a failure is thrown (a directory has no retention to report). */
  async deleteMany(names: string[]): Promise<{ name: string; reason: string }[]> {
    for (const n of names) await this.delete(n);
    return [];
  }

  /**
   * Names under `prefix`, without sizes (a directory listing has none). `chunks/` is listed
   * two levels deep (its fan-out directories); temporary files are listed too.
   */
  async *list(prefix: string): AsyncIterable<StoredObject> {
    const dir = this.path(prefix.replace(/\/$/, ""));
    const names = await this.fs.readDir(dir).catch((e) => {
      throw ioError("list", dir, e);
    });
    for (const n of names.sort()) {
      if (prefix === "chunks/" && !n.startsWith(TEMP_PREFIX)) {
        const path = join(dir, n);
        if (!(await this.fs.stat(path))?.isDirectory) {
          yield { name: `${prefix}${n}` }; // a stray file among the fan-out directories
          continue;
        }
        const sub = await this.fs.readDir(path).catch((e) => {
          throw ioError("list", path, e);
        });
        for (const s of sub.sort()) yield { name: `${prefix}${n}/${s}` };
      } else {
        yield { name: `${prefix}${n}` };
      }
    }
  }

  /** Size and mtime of `name`, or `null`. */
  async stat(name: string): Promise<{ size: number; mtimeMs: number } | null> {
    const st = await this.fs.stat(this.path(name)).catch((e) => {
      throw ioError("stat", this.path(name), e);
    });
    return st && st.isFile ? { size: st.size, mtimeMs: st.mtimeMs } : null;
  }

  /** `fsync` every directory changed by a deferred put or a removal, all at once. */
  async flush(): Promise<void> {
    const dirs = [...this.#dirtyDirs].sort((a, b) => b.length - a.length);
    const synced = await Promise.allSettled(dirs.map(async (dir) => {
      await this.fs.syncDir(dir);
      this.#dirtyDirs.delete(dir);
    }));
    const failed = synced.findIndex((r) => r.status === "rejected");
    if (failed >= 0) {
      throw ioError("fsync", dirs[failed], (synced[failed] as PromiseRejectedResult).reason);
    }
  }
}

/**
 * Read `path` if it exists and is at most `max` bytes; `null` if missing;
 * `CorruptError` if larger (checked before reading, so no huge allocation).
 * With `into`, the bytes land in it when they fit (the result is then a view of it).
 */
export async function readBounded(
  fs: RepoFs,
  path: string,
  max: number,
  into?: Uint8Array,
): Promise<Uint8Array | null> {
  let st;
  try {
    st = await fs.stat(path);
  } catch (e) {
    throw ioError("stat", path, e);
  }
  if (st === null) return null;
  if (!st.isFile) throw new CorruptError(path, "not a regular file");
  if (st.size > max) throw new CorruptError(path, `${st.size} bytes, more than ${max}`);
  try {
    const bytes = into && fs.readFileInto
      ? await fs.readFileInto(path, into)
      : await fs.readFile(path);
    if (bytes.length > max) throw new CorruptError(path, `grew past ${max} bytes`);
    return bytes;
  } catch (e) {
    if (e instanceof CorruptError) throw e;
    if (e instanceof Deno.errors.NotFound) return null;
    throw ioError("read", path, e);
  }
}

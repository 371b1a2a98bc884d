/**
 * A file or block device read and written at positions (`pread`, `pwrite`
 * through libc, each call on Deno's blocking thread pool), so several
 * requests are in flight at once, optionally with `O_DIRECT`: the bytes go
 * between the device and our buffers without the page cache, so a backup of
 * a large device neither evicts the host's cached data nor pays a copy.
 * Buffers for `O_DIRECT` must be aligned: take them from
 * {@linkcode PositionalFile.allocate}; anything else (a misaligned buffer, a
 * length that is not a whole number of sectors, a file system that refuses
 * `O_DIRECT`) goes through a second, buffered descriptor of the same file.
 *
 * Needs `--allow-ffi`; {@linkcode PositionalFile.open} returns `null`
 * without it, and callers fall back to Deno's file API.
 *
 * @example Read the first MiB of a device without the page cache
 * ```ts ignore
 * import { PositionalFile } from "./positional_file.ts";
 * using f = PositionalFile.open("/dev/vdb", { direct: true });
 * if (f) {
 *   const buf = f.allocate(1 << 20);
 *   console.log(await f.read(0n, buf), f.direct);
 * }
 * ```
 *
 * @module
 */

import { errnoDescription, errnoName } from "../ffi/errno.ts";

const symbols = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  lseek64: { parameters: ["i32", "i64", "i32"], result: "i64" },
  pread64: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  pwrite64: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize", nonblocking: true },
  fsync: { parameters: ["i32"], result: "i32", nonblocking: true },
  pread64Sync: { name: "pread64", parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pwrite64Sync: {
    name: "pwrite64",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
  },
  fsyncSync: { name: "fsync", parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof symbols>;
let libc: Libc | null | undefined;

/** libc, or `null` when FFI is not permitted or libc cannot be opened. */
function openLibc(): Libc | null {
  if (libc === undefined) {
    try {
      libc = Deno.dlopen("libc.so.6", symbols);
    } catch {
      libc = null;
    }
  }
  return libc;
}

const O_RDONLY = 0;
const O_RDWR = 2;
const O_DIRECT = 0o40000;
const O_CLOEXEC = 0o2000000;
const SEEK_END = 2;
const EINTR = 4;
/** Alignment of `O_DIRECT` buffers, offsets and lengths: a page, enough for any sector size. */
const ALIGN = 4096;

/** Options of {@linkcode PositionalFile.open}. */
export interface PositionalFileOptions {
  /** Open for writing too (never creates or truncates). @default false */
  write?: boolean;
  /** Bypass the page cache (`O_DIRECT`) where the file system allows it. @default false */
  direct?: boolean;
}

/** The error of a failed call, with the errno's name and text (like Deno's errors). */
function osError(op: string, path: string, errno: number): Error {
  const e = new Error(
    `${op} ${path}: ${errnoDescription(errno)} (${errnoName(errno)}, os error ${errno})`,
  );
  (e as Error & { code: string }).code = errnoName(errno);
  return e;
}

/** A file open for positional I/O. */
export class PositionalFile implements Disposable {
  /** The path opened. */
  readonly path: string;
  readonly #lib: Libc;
  readonly #fd: number;
  readonly #directFd: number;
  #closed = false;

  private constructor(lib: Libc, path: string, fd: number, directFd: number) {
    this.#lib = lib;
    this.path = path;
    this.#fd = fd;
    this.#directFd = directFd;
  }

  /**
   * Opens `path`; `null` when FFI is not available. Throws the open's error
   * (`ENOENT`, `EACCES`, ...) for the buffered descriptor; a refused
   * `O_DIRECT` only leaves {@linkcode PositionalFile.direct} false.
   */
  static open(path: string, options: PositionalFileOptions = {}): PositionalFile | null {
    const lib = openLibc();
    if (!lib) return null;
    const flags = (options.write ? O_RDWR : O_RDONLY) | O_CLOEXEC;
    const cpath = new TextEncoder().encode(path + "\0");
    const fd = lib.symbols.open(cpath, flags, 0);
    if (fd < 0) throw osError("open", path, errnoOf(lib));
    const directFd = options.direct ? lib.symbols.open(cpath, flags | O_DIRECT, 0) : -1;
    return new PositionalFile(lib, path, fd, directFd);
  }

  /** Whether aligned requests bypass the page cache. */
  get direct(): boolean {
    return this.#directFd >= 0;
  }

  /** Requests this file serves at once to good effect. */
  get parallelism(): number {
    return 4;
  }

  /** The size in bytes (the end of the file or device). */
  size(): bigint {
    const end = this.#lib.symbols.lseek64(this.#fd, 0n, SEEK_END);
    if (end < 0n) throw osError("seek", this.path, errnoOf(this.#lib));
    return BigInt(end);
  }

  /** A zeroed buffer of `length` bytes that `O_DIRECT` can use (page-aligned when direct). */
  allocate(length: number): Uint8Array {
    if (!this.direct) return new Uint8Array(length);
    const raw = new Uint8Array(length + ALIGN);
    const addr = Deno.UnsafePointer.value(Deno.UnsafePointer.of(raw));
    const skip = Number((BigInt(ALIGN) - BigInt(addr) % BigInt(ALIGN)) % BigInt(ALIGN));
    return raw.subarray(skip, skip + length);
  }

  /** Reads into `buf` from `offset`; fewer bytes only at the end of the file. */
  async read(offset: bigint, buf: Uint8Array): Promise<number> {
    let done = 0;
    while (done < buf.length) {
      const n = await this.#io("read", offset + BigInt(done), buf.subarray(done));
      if (n === 0) break;
      done += n;
    }
    return done;
  }

  /** Writes all of `data` at `offset`. */
  async write(offset: bigint, data: Uint8Array): Promise<void> {
    let done = 0;
    while (done < data.length) {
      const n = await this.#io("write", offset + BigInt(done), data.subarray(done));
      if (n === 0) throw osError("write", this.path, 5);
      done += n;
    }
  }

  /** `fsync`: written data and the file's metadata are durable. */
  async sync(): Promise<void> {
    if ((await this.#lib.symbols.fsync(this.#fd)) === 0) return;
    // errno belongs to the thread that ran the call: ask again on this one.
    while (this.#lib.symbols.fsyncSync(this.#fd) !== 0) {
      const errno = errnoOf(this.#lib);
      if (errno !== EINTR) throw osError("fsync", this.path, errno);
    }
  }

  /** Closes both descriptors. Idempotent; a request still in flight must have ended. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#lib.symbols.close(this.#fd);
    if (this.#directFd >= 0) this.#lib.symbols.close(this.#directFd);
  }

  /** Same as {@linkcode PositionalFile.close}. */
  [Symbol.dispose](): void {
    this.close();
  }

  /** One `pread`/`pwrite`: direct when the request allows it, buffered otherwise. */
  async #io(op: "read" | "write", offset: bigint, buf: Uint8Array): Promise<number> {
    if (this.#closed) throw new Error(`${this.path} is closed`);
    const s = this.#lib.symbols;
    const aligned = this.#directFd >= 0 && buf.length % ALIGN === 0 &&
      offset % BigInt(ALIGN) === 0n &&
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf))) % BigInt(ALIGN) === 0n;
    const fd = aligned ? this.#directFd : this.#fd;
    const n = op === "read"
      ? await s.pread64(fd, buf, BigInt(buf.length), offset)
      : await s.pwrite64(fd, buf, BigInt(buf.length), offset);
    if (n >= 0) return Number(n);
    // The errno of a failed call is the pool thread's: repeat the request on
    // this thread, where errno can be read (an error that does not repeat is
    // a result like any other).
    for (;;) {
      const m = op === "read"
        ? s.pread64Sync(fd, buf, BigInt(buf.length), offset)
        : s.pwrite64Sync(fd, buf, BigInt(buf.length), offset);
      if (m >= 0) return Number(m);
      const errno = errnoOf(this.#lib);
      if (errno === EINTR) continue;
      throw osError(op, this.path, errno);
    }
  }
}

function errnoOf(lib: Libc): number {
  const p = lib.symbols.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

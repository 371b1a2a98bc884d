/**
 * Writing a restore's chunks to its target (a file or a block device): at
 * positions, several writes in flight (`pwrite` through libc,
 * {@linkcode PositionalFile}), optionally with `O_DIRECT` so a large
 * restore does not fill the page cache or pay a copy; one write at a time
 * through Deno's file API when FFI is not permitted.
 *
 * @example Write two chunks and make them durable
 * ```ts ignore
 * import { TargetWriter } from "./target_writer.ts";
 * using w = await TargetWriter.open("/dev/vdc", { direct: true });
 * await Promise.all([w.write(0n, a), w.write(4194304n, b)]);
 * await w.sync();
 * ```
 *
 * @module
 */

import { PositionalFile } from "./positional_file.ts";

/** Options of {@linkcode TargetWriter.open}. */
export interface TargetWriterOptions {
  /** Write with `O_DIRECT` where the target allows it. @default false */
  direct?: boolean;
}

/** A restore target open for writing. */
export class TargetWriter implements Disposable {
  readonly #file: PositionalFile | Deno.FsFile;
  #chain: Promise<unknown> = Promise.resolve();
  #zeros: Uint8Array | null = null;

  private constructor(file: PositionalFile | Deno.FsFile) {
    this.#file = file;
  }

  /** Opens existing file or device `path` for writing (never creates or truncates). */
  static async open(path: string, options: TargetWriterOptions = {}): Promise<TargetWriter> {
    const positional = PositionalFile.open(path, { write: true, direct: options.direct });
    return new TargetWriter(positional ?? await Deno.open(path, { write: true }));
  }

  /** Whether aligned writes bypass the page cache. */
  get direct(): boolean {
    return this.#file instanceof PositionalFile && this.#file.direct;
  }

  /** Writes in flight worth having. */
  get parallelism(): number {
    return this.#file instanceof PositionalFile ? this.#file.parallelism : 1;
  }

  /**
   * Writes all of `data` at `offset`. With `O_DIRECT`, `data` is first
   * copied to an aligned buffer unless it is one (a copy costs far less
   * than the page cache's).
   */
  write(offset: bigint, data: Uint8Array): Promise<void> {
    const file = this.#file;
    if (file instanceof PositionalFile) {
      if (!file.direct || data.length % 4096 !== 0) return file.write(offset, data);
      const aligned = file.allocate(data.length);
      aligned.set(data);
      return file.write(offset, aligned);
    }
    const next = this.#chain.catch(() => {}).then(async () => {
      await file.seek(offset, Deno.SeekMode.Start);
      let done = 0;
      while (done < data.length) done += await file.write(data.subarray(done));
    });
    this.#chain = next;
    return next;
  }

  /** Writes `length` zero bytes at `offset` (from one shared buffer). */
  writeZeros(offset: bigint, length: number): Promise<void> {
    if (!this.#zeros || this.#zeros.length < length) {
      this.#zeros = this.#file instanceof PositionalFile
        ? this.#file.allocate(length)
        : new Uint8Array(length);
    }
    const zeros = this.#zeros.subarray(0, length);
    const file = this.#file;
    return file instanceof PositionalFile ? file.write(offset, zeros) : this.write(offset, zeros);
  }

  /** Every write is durable (`fsync`). */
  async sync(): Promise<void> {
    await this.#chain;
    await this.#file.sync();
  }

  /** Closes the target. Idempotent. */
  close(): void {
    try {
      this.#file.close();
    } catch {
      // already closed
    }
  }

  /** Same as {@linkcode TargetWriter.close}. */
  [Symbol.dispose](): void {
    this.close();
  }
}

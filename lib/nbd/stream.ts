/**
 * A byte stream for one NBD connection: exact-length reads through a small
 * buffer (headers are read 16 or 28 bytes at a time) and writes that never
 * interleave (replies to requests served concurrently go out whole, one after
 * the other).
 *
 * @module
 */

/** What a connection must offer: `Deno.Conn` satisfies it. */
export interface ByteConn {
  /** Read into `p`; the number of bytes read, or `null` at the end of the stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Write from `p`; the number of bytes written. */
  write(p: Uint8Array): Promise<number>;
  /** Close the connection. */
  close(): void;
}

/** The peer closed the connection in the middle of a message. */
export class TruncatedError extends Error {
  override name = "TruncatedError";
}

/** Concatenate byte arrays. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Buffered exact reads and serialised writes over a {@linkcode ByteConn}. */
export class NbdStream {
  readonly #conn: ByteConn;
  readonly #buf = new Uint8Array(64 * 1024);
  #start = 0;
  #end = 0;
  // Writes are chained: each send starts when the previous one has finished,
  // so the parts of one reply are never split by another reply's bytes.
  #writing: Promise<void> = Promise.resolve();
  #closed = false;
  #connClosed = false;

  /** Wrap `conn`. */
  constructor(conn: ByteConn) {
    this.#conn = conn;
  }

  /** Whether {@linkcode NbdStream.close} was called or a write failed. */
  get closed(): boolean {
    return this.#closed;
  }

  async #fill(): Promise<boolean> {
    if (this.#start === this.#end) this.#start = this.#end = 0;
    else if (this.#end === this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    const n = await this.#conn.read(this.#buf.subarray(this.#end));
    if (n === null || n === 0) return false;
    this.#end += n;
    return true;
  }

  /**
   * Read exactly `n` bytes into a new array. At the end of the stream before
   * the first byte: `null`; after some bytes: {@linkcode TruncatedError}.
   */
  async readExact(n: number): Promise<Uint8Array | null> {
    const out = new Uint8Array(n);
    let got = 0;
    while (got < n) {
      if (this.#start < this.#end) {
        const take = Math.min(n - got, this.#end - this.#start);
        out.set(this.#buf.subarray(this.#start, this.#start + take), got);
        this.#start += take;
        got += take;
        continue;
      }
      // Large payloads go straight into the result, not through the buffer.
      if (n - got >= this.#buf.length) {
        const r = await this.#conn.read(out.subarray(got));
        if (r === null || r === 0) return this.#eof(got, n);
        got += r;
        continue;
      }
      if (!(await this.#fill())) return this.#eof(got, n);
    }
    return out;
  }

  #eof(got: number, n: number): null {
    if (got === 0) return null;
    throw new TruncatedError(`connection closed after ${got} of ${n} bytes`);
  }

  /** Read exactly `n` bytes and drop them (without allocating `n` bytes). */
  async skip(n: number): Promise<void> {
    let left = n;
    while (left > 0) {
      if (this.#start === this.#end && !(await this.#fill())) {
        throw new TruncatedError(`connection closed with ${left} of ${n} bytes to skip`);
      }
      const take = Math.min(left, this.#end - this.#start);
      this.#start += take;
      left -= take;
    }
  }

  /**
   * Write `parts` back to back, after every earlier send. Small parts are
   * joined into one write. Rejects if the connection fails; later sends then
   * reject too.
   */
  send(...parts: Uint8Array[]): Promise<void> {
    const run = async (): Promise<void> => {
      if (this.#closed) throw new Deno.errors.BrokenPipe("connection closed");
      let small: Uint8Array[] = [];
      const flush = async (): Promise<void> => {
        if (small.length === 0) return;
        const joined = small.length === 1 ? small[0] : concatBytes(small);
        small = [];
        await this.#writeAll(joined);
      };
      for (const p of parts) {
        if (p.length < 64 * 1024) small.push(p);
        else {
          await flush();
          await this.#writeAll(p);
        }
      }
      await flush();
    };
    const p = this.#writing.then(run);
    this.#writing = p.catch(() => {
      this.#closed = true;
    });
    return p;
  }

  async #writeAll(p: Uint8Array): Promise<void> {
    let done = 0;
    while (done < p.length) done += await this.#conn.write(p.subarray(done));
  }

  /** Close the connection (idempotent); pending reads end. */
  close(): void {
    this.#closed = true;
    if (this.#connClosed) return;
    this.#connClosed = true;
    try {
      this.#conn.close();
    } catch {
      // already closed
    }
  }
}

/**
 * Ownership of one native handle (a `struct blksnap_dev *` or
 * `struct blksnap_ctl *`): idempotent release, deferred while a nonblocking
 * call still uses the pointer, and a `FinalizationRegistry` backstop that
 * releases handles dropped without `close()`.
 *
 * @module
 */

import { closedError } from "./unwrap.ts";

interface Held {
  pointer: Deno.PointerObject;
  release: (pointer: Deno.PointerObject) => void;
}

const registry = new FinalizationRegistry<Held>((held) => {
  held.release(held.pointer);
});

/** A native handle owned by one JavaScript object. */
export class NativeHandle {
  #pointer: Deno.PointerObject | null;
  #release: (pointer: Deno.PointerObject) => void;
  #what: string;
  #pending = 0;
  #closing = false;

  /**
   * Takes ownership of `pointer`; `release` frees it (once). `owner` is the
   * object whose collection releases it if nobody closed it; `what` names
   * it in errors ("tracker").
   */
  constructor(
    pointer: Deno.PointerObject,
    release: (pointer: Deno.PointerObject) => void,
    owner: object,
    what: string,
  ) {
    this.#pointer = pointer;
    this.#release = release;
    this.#what = what;
    registry.register(owner, { pointer, release }, this);
  }

  /** True once {@linkcode NativeHandle.close} was called. */
  get closed(): boolean {
    return this.#closing;
  }

  /** The pointer, or `null` once closed. */
  get pointer(): Deno.PointerObject | null {
    return this.#closing ? null : this.#pointer;
  }

  /** The pointer for a synchronous call by `op`; `EBADF` once closed. */
  use(op: string): Deno.PointerObject {
    if (this.#closing || this.#pointer === null) throw closedError(op, this.#what);
    return this.#pointer;
  }

  /**
   * Runs a nonblocking call: the pointer stays valid until it settles, even
   * if the handle is closed meanwhile (the release then happens after it).
   */
  async useAsync<T>(op: string, call: (pointer: Deno.PointerObject) => Promise<T>): Promise<T> {
    const pointer = this.use(op);
    this.#pending++;
    try {
      return await call(pointer);
    } finally {
      this.#pending--;
      if (this.#closing && this.#pending === 0) this.#free();
    }
  }

  /** Closes the handle; returns false if it was already closed. */
  close(): boolean {
    if (this.#closing) return false;
    this.#closing = true;
    registry.unregister(this);
    if (this.#pending === 0) this.#free();
    return true;
  }

  #free(): void {
    const pointer = this.#pointer;
    this.#pointer = null;
    if (pointer !== null) this.#release(pointer);
  }
}

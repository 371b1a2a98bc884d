/**
 * The NBD server: listens on a Unix socket or a loopback TCP port, runs the
 * handshake and then the transmission phase on every connection, any number
 * of connections at once over the same exports. Stopping it refuses new
 * requests with `ESHUTDOWN`, lets requests in flight finish (for a bounded
 * time), closes every connection and removes the socket file.
 *
 * @module
 */

import { type NbdExport, negotiate } from "./handshake.ts";
import { NbdStream } from "./stream.ts";
import { transmit } from "./transmission.ts";

/** Where a server listens: a Unix socket path, or a TCP port on 127.0.0.1. */
export type NbdListenAddress = { socket: string } | { port: number; hostname?: string };

/** Options of {@linkcode NbdServer.listen}. */
export interface NbdServerOptions {
  /** The exports offered (the first is also the default, empty-named export). */
  exports: NbdExport[];
  /** Where connections, protocol violations and failed reads are reported. */
  log?: (message: string) => void;
  /** Requests served at once per connection. @default 64 */
  window?: number;
  /** How long {@linkcode NbdServer.close} waits for requests in flight, in ms. @default 5000 */
  drainMs?: number;
}

interface Connection {
  id: number;
  stream: NbdStream;
  done: Promise<void>;
  /** In the handshake (nothing in flight: closed at once on stop). */
  negotiating: boolean;
}

/** Whether something accepts connections on the Unix socket `path`. */
async function socketInUse(path: string): Promise<boolean> {
  try {
    const c = await Deno.connect({ transport: "unix", path });
    c.close();
    return true;
  } catch {
    return false;
  }
}

/**
 * A running NBD server.
 *
 * @example Serve a backup point on a Unix socket until SIGTERM
 * ```ts ignore
 * import { Repository } from "../backup/mod.ts";
 * import { BackupPointSource, NbdServer } from "./mod.ts";
 * const repo = await Repository.open("/backup/repo");
 * const id = "20261124T031600123Z-0a1b2c3d";
 * const source = await BackupPointSource.open(repo, id);
 * const server = await NbdServer.listen({ socket: "/run/blksnap/backup.sock" }, {
 *   exports: [{ name: id, description: "backup point", source }],
 *   log: console.error,
 * });
 * Deno.addSignalListener("SIGTERM", () => server.close());
 * await server.finished;
 * ```
 */
export class NbdServer {
  /** Where the server listens (a socket path or `127.0.0.1:port`). */
  readonly address: string;
  readonly #listener: Deno.Listener;
  readonly #options: NbdServerOptions;
  readonly #socketPath: string | null;
  readonly #connections = new Map<number, Connection>();
  readonly #log: (message: string) => void;
  #nextId = 1;
  #stopping = false;
  #stop!: () => void;
  readonly #stopped = new Promise<void>((r) => (this.#stop = r));
  #acceptLoop: Promise<void>;
  #closed: Promise<void> | null = null;
  #resolveFinished!: () => void;
  /** Resolves when the server has stopped (after {@linkcode NbdServer.close}). */
  readonly finished: Promise<void>;

  private constructor(
    listener: Deno.Listener,
    options: NbdServerOptions,
    socketPath: string | null,
  ) {
    this.#listener = listener;
    this.#options = options;
    this.#socketPath = socketPath;
    this.#log = options.log ?? (() => {});
    const addr = listener.addr;
    this.address = addr.transport === "unix"
      ? (addr as Deno.UnixAddr).path
      : `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`;
    this.finished = new Promise((r) => (this.#resolveFinished = r));
    this.#acceptLoop = this.#accept();
  }

  /**
   * Start listening. A Unix socket is created with mode 0600 (the data is a
   * device image); an existing socket file nobody listens on is replaced, one
   * in use is refused. TCP listens on 127.0.0.1 unless told otherwise.
   */
  static async listen(address: NbdListenAddress, options: NbdServerOptions): Promise<NbdServer> {
    if (options.exports.length === 0) throw new RangeError("an NBD server needs an export");
    if ("socket" in address) {
      const path = address.socket;
      let st: Deno.FileInfo | null = null;
      try {
        st = await Deno.lstat(path);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
      }
      if (st !== null) {
        if (!st.isSocket) throw new Deno.errors.AlreadyExists(`${path} exists and is not a socket`);
        if (await socketInUse(path)) {
          throw new Deno.errors.AddrInUse(`another server listens on ${path}`);
        }
        await Deno.remove(path);
      }
      const listener = Deno.listen({ transport: "unix", path });
      await Deno.chmod(path, 0o600);
      return new NbdServer(listener, options, path);
    }
    const listener = Deno.listen({
      transport: "tcp",
      hostname: address.hostname ?? "127.0.0.1",
      port: address.port,
    });
    return new NbdServer(listener, options, null);
  }

  /** Connections open now. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  async #accept(): Promise<void> {
    for (;;) {
      let conn: Deno.Conn;
      try {
        conn = await this.#listener.accept();
      } catch (e) {
        if (this.#stopping) return;
        if (e instanceof Deno.errors.BadResource || e instanceof Deno.errors.Interrupted) return;
        this.#log(`accept failed: ${(e as Error).message}`);
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      if (this.#stopping) {
        conn.close();
        continue;
      }
      if (conn.remoteAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
      const id = this.#nextId++;
      const stream = new NbdStream(conn);
      const c: Connection = { id, stream, done: Promise.resolve(), negotiating: true };
      c.done = this.#serve(c).finally(() => {
        stream.close();
        this.#connections.delete(id);
      });
      this.#connections.set(id, c);
    }
  }

  async #serve(c: Connection): Promise<void> {
    const shuttingDown = (): boolean => this.#stopping;
    const log = (m: string): void => this.#log(`connection ${c.id}: ${m}`);
    try {
      const session = await negotiate(c.stream, {
        exports: this.#options.exports,
        shuttingDown,
        log,
      });
      if (session === null) return;
      c.negotiating = false;
      log(
        `export ${JSON.stringify(session.export.name)}, ${
          session.structured ? "structured" : "simple"
        } replies${session.allocationContext !== null ? ", base:allocation" : ""}`,
      );
      const end = await transmit(c.stream, session, {
        window: this.#options.window,
        shuttingDown,
        stop: this.#stopped,
        log,
      });
      log(`ended (${end})`);
    } catch (e) {
      if (!this.#stopping) log(`ended: ${(e as Error).message}`);
    }
  }

  /**
   * Stop: no new connections, new requests refused with `ESHUTDOWN`, requests
   * in flight given `drainMs` to finish, then every connection closed and the
   * socket file removed. Idempotent; resolves when done.
   */
  close(): Promise<void> {
    this.#closed ??= this.#close();
    return this.#closed;
  }

  async #close(): Promise<void> {
    this.#stopping = true;
    this.#stop();
    try {
      this.#listener.close();
    } catch {
      // already closed
    }
    await this.#acceptLoop;
    const all = [...this.#connections.values()];
    // A connection in the handshake has nothing in flight; one in transmission
    // stops reading requests and answers those it has (within drainMs).
    for (const c of all) if (c.negotiating) c.stream.close();
    const drained = Promise.all(all.map((c) => c.done));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      drained,
      new Promise<void>((r) => (timer = setTimeout(r, this.#options.drainMs ?? 5000))),
    ]);
    clearTimeout(timer);
    for (const c of all) c.stream.close();
    await drained;
    if (this.#socketPath !== null) await Deno.remove(this.#socketPath).catch(() => {});
    this.#resolveFinished();
  }
}

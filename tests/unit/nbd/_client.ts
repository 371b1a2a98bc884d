/**
 * A small NBD client for tests: it speaks the handshake and the transmission
 * phase step by step, so tests can also send what real clients never send
 * (unknown options, bad lengths, requests beyond the end, a broken magic).
 * Used by the unit tests against an in-process server and by the host tests
 * against `blksnap serve`.
 *
 * @module
 */

import {
  Command,
  encodeRequest,
  NBD_MAGIC,
  Option,
  OPTION_MAGIC,
  OPTION_REPLY_MAGIC,
  OptionReply,
  REPLY_FLAG_DONE,
  ReplyType,
  SIMPLE_REPLY_MAGIC,
  STRUCTURED_REPLY_MAGIC,
} from "../../../lib/nbd/protocol.ts";
import { concatBytes, NbdStream } from "../../../lib/nbd/stream.ts";

/** One option reply. */
export interface OptionReplyMsg {
  option: number;
  type: number;
  data: Uint8Array;
}

/** One structured reply chunk. */
export interface Chunk {
  flags: number;
  type: number;
  handle: bigint;
  payload: Uint8Array;
}

/** The answer to one request. */
export interface Answer {
  /** First error value seen (0 if none). */
  error: number;
  /** Bytes read (holes filled with zeros), for reads. */
  data?: Uint8Array;
  /** Structured chunks, when structured replies were negotiated. */
  chunks: Chunk[];
}

const be32 = (n: number): Uint8Array => {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, n);
  return b;
};
const be16 = (n: number): Uint8Array => {
  const b = new Uint8Array(2);
  new DataView(b.buffer).setUint16(0, n);
  return b;
};
const str = (s: string): Uint8Array => new TextEncoder().encode(s);

/** A test NBD client over one connection. */
export class TestClient {
  readonly stream: NbdStream;
  readonly conn: Deno.Conn;
  structured = false;
  size = 0n;
  flags = 0;
  #handle = 1n;

  private constructor(conn: Deno.Conn) {
    this.conn = conn;
    this.stream = new NbdStream(conn);
  }

  /** Connect to a Unix socket path or a loopback port. */
  static async connect(to: string | number): Promise<TestClient> {
    const conn = typeof to === "string"
      ? await Deno.connect({ transport: "unix", path: to })
      : await Deno.connect({ hostname: "127.0.0.1", port: to });
    return new TestClient(conn);
  }

  async #need(n: number): Promise<Uint8Array> {
    const b = await this.stream.readExact(n);
    if (b === null) throw new Error("server closed the connection");
    return b;
  }

  /** Read the greeting and send client flags; returns the handshake flags. */
  async greet(clientFlags = 3): Promise<number> {
    const g = await this.#need(18);
    const v = new DataView(g.buffer);
    if (v.getBigUint64(0) !== NBD_MAGIC || v.getBigUint64(8) !== OPTION_MAGIC) {
      throw new Error("bad greeting");
    }
    await this.stream.send(be32(clientFlags));
    return v.getUint16(16);
  }

  /** Send option `option` with `data` (no reply read). */
  async sendOption(
    option: number,
    data: Uint8Array = new Uint8Array(0),
    length = data.length,
  ): Promise<void> {
    const h = new Uint8Array(16);
    const v = new DataView(h.buffer);
    v.setBigUint64(0, OPTION_MAGIC);
    v.setUint32(8, option);
    v.setUint32(12, length);
    await this.stream.send(h, data);
  }

  /** Read one option reply. */
  async optionReply(): Promise<OptionReplyMsg> {
    const h = await this.#need(20);
    const v = new DataView(h.buffer);
    if (v.getBigUint64(0) !== OPTION_REPLY_MAGIC) throw new Error("bad option reply magic");
    const len = v.getUint32(16);
    const data = len ? await this.#need(len) : new Uint8Array(0);
    return { option: v.getUint32(8), type: v.getUint32(12), data };
  }

  /** Send an option and read its replies up to the final one (ACK or an error). */
  async option(option: number, data: Uint8Array = new Uint8Array(0)): Promise<OptionReplyMsg[]> {
    await this.sendOption(option, data);
    const out: OptionReplyMsg[] = [];
    for (;;) {
      const r = await this.optionReply();
      out.push(r);
      if (r.type === OptionReply.Ack || r.type >= 0x80000000) return out;
    }
  }

  /** `NBD_OPT_INFO`/`GO` data for export `name` asking for `infos`. */
  static infoData(name: string, infos: number[] = []): Uint8Array {
    const n = str(name);
    return concatBytes([be32(n.length), n, be16(infos.length), ...infos.map(be16)]);
  }

  /** Meta context option data for export `name` with `queries`. */
  static metaData(name: string, queries: string[]): Uint8Array {
    const n = str(name);
    return concatBytes([
      be32(n.length),
      n,
      be32(queries.length),
      ...queries.flatMap((q) => [be32(str(q).length), str(q)]),
    ]);
  }

  /**
   * The usual way in: greet, optionally structured replies and
   * `base:allocation`, then `NBD_OPT_GO`. Throws if GO fails.
   */
  async handshake(
    options: { structured?: boolean; allocation?: boolean; name?: string } = {},
  ): Promise<void> {
    await this.greet();
    if (options.structured || options.allocation) {
      const r = await this.option(Option.StructuredReply);
      if (r.at(-1)!.type !== OptionReply.Ack) throw new Error("structured replies refused");
      this.structured = true;
    }
    if (options.allocation) {
      const r = await this.option(
        Option.SetMetaContext,
        TestClient.metaData(options.name ?? "", ["base:allocation"]),
      );
      if (r.at(-1)!.type !== OptionReply.Ack || r.length !== 2) {
        throw new Error("base:allocation refused");
      }
    }
    const replies = await this.option(Option.Go, TestClient.infoData(options.name ?? ""));
    const last = replies.at(-1)!;
    if (last.type !== OptionReply.Ack) {
      throw new Error(`GO failed: reply 0x${last.type.toString(16)}`);
    }
    for (const r of replies) {
      if (r.type === OptionReply.Info && new DataView(r.data.buffer).getUint16(0) === 0) {
        const v = new DataView(r.data.buffer);
        this.size = v.getBigUint64(2);
        this.flags = v.getUint16(10);
      }
    }
  }

  /** Send a request; returns its handle. */
  async send(
    type: number,
    offset: bigint | number,
    length: number,
    options: { flags?: number; data?: Uint8Array } = {},
  ): Promise<bigint> {
    const handle = this.#handle++;
    const header = encodeRequest({
      flags: options.flags ?? 0,
      type,
      handle,
      offset: BigInt(offset),
      length,
    });
    await this.stream.send(header, options.data ?? new Uint8Array(0));
    return handle;
  }

  /**
   * Read the answer to request `handle` (requests must be answered in the
   * order they are awaited here: tests send one at a time). `readLength` is
   * the data length a simple read reply carries.
   */
  async answer(handle: bigint, readLength = 0, readOffset = 0n): Promise<Answer> {
    const head = await this.#need(4);
    const magic = new DataView(head.buffer).getUint32(0);
    if (magic === SIMPLE_REPLY_MAGIC) {
      const rest = await this.#need(12);
      const v = new DataView(rest.buffer);
      const error = v.getUint32(0);
      if (v.getBigUint64(4) !== handle) throw new Error("reply to another handle");
      const data = error === 0 && readLength > 0 ? await this.#need(readLength) : undefined;
      return { error, data, chunks: [] };
    }
    if (magic !== STRUCTURED_REPLY_MAGIC) {
      throw new Error(`bad reply magic 0x${magic.toString(16)}`);
    }
    const chunks: Chunk[] = [];
    let error = 0;
    let data: Uint8Array | undefined;
    let first = true;
    for (;;) {
      if (!first) {
        const m = new DataView((await this.#need(4)).buffer).getUint32(0);
        if (m !== STRUCTURED_REPLY_MAGIC) throw new Error("bad structured magic");
      }
      first = false;
      const rest = await this.#need(16);
      const v = new DataView(rest.buffer);
      const c: Chunk = {
        flags: v.getUint16(0),
        type: v.getUint16(2),
        handle: v.getBigUint64(4),
        payload: await this.#need(v.getUint32(12)),
      };
      if (c.handle !== handle) throw new Error("chunk of another handle");
      chunks.push(c);
      const pv = new DataView(c.payload.buffer, c.payload.byteOffset, c.payload.length);
      if (c.type >= 0x8000) error ||= pv.getUint32(0);
      if (c.type === ReplyType.OffsetData || c.type === ReplyType.OffsetHole) {
        data ??= new Uint8Array(readLength);
        const at = Number(pv.getBigUint64(0) - readOffset);
        if (c.type === ReplyType.OffsetData) data.set(c.payload.subarray(8), at);
      }
      if (c.flags & REPLY_FLAG_DONE) break;
    }
    return { error, data, chunks };
  }

  /** Read `length` bytes at `offset`. */
  async read(offset: number | bigint, length: number, flags = 0): Promise<Answer> {
    const h = await this.send(Command.Read, offset, length, { flags });
    return this.answer(h, length, BigInt(offset));
  }

  /** Write `data` at `offset`. */
  async write(offset: number | bigint, data: Uint8Array, flags = 0): Promise<Answer> {
    return this.answer(await this.send(Command.Write, offset, data.length, { flags, data }));
  }

  /** `base:allocation` descriptors of `[offset, offset + length)`. */
  async blockStatus(
    offset: number | bigint,
    length: number,
    flags = 0,
  ): Promise<{ error: number; descriptors: Array<{ length: number; flags: number }> }> {
    const a = await this.answer(await this.send(Command.BlockStatus, offset, length, { flags }));
    const descriptors: Array<{ length: number; flags: number }> = [];
    for (const c of a.chunks) {
      if (c.type !== ReplyType.BlockStatus) continue;
      const v = new DataView(c.payload.buffer, c.payload.byteOffset, c.payload.length);
      for (let at = 4; at < c.payload.length; at += 8) {
        descriptors.push({ length: v.getUint32(at), flags: v.getUint32(at + 4) });
      }
    }
    return { error: a.error, descriptors };
  }

  /** Send `NBD_CMD_DISC` and close. */
  async disconnect(): Promise<void> {
    await this.send(Command.Disc, 0, 0).catch(() => {});
    this.close();
  }

  /** Whether the server closed the connection (the next read sees the end). */
  async closedByServer(): Promise<boolean> {
    try {
      return (await this.stream.readExact(1)) === null;
    } catch {
      return true;
    }
  }

  /** Close the connection. */
  close(): void {
    this.stream.close();
  }
}

/**
 * The fixed newstyle handshake, server side: greeting, client flags, then
 * options until the client picks an export (`NBD_OPT_GO`, or the old
 * `NBD_OPT_EXPORT_NAME`) or leaves. Understood: `EXPORT_NAME`, `ABORT`,
 * `LIST`, `INFO`, `GO`, `STRUCTURED_REPLY`, `LIST_META_CONTEXT` and
 * `SET_META_CONTEXT` (`base:allocation`); anything else, TLS included, is
 * answered `NBD_REP_ERR_UNSUP` and the client may go on.
 *
 * @module
 */

import type { BlockSource } from "./block_source.ts";
import {
  BASE_ALLOCATION,
  ClientFlag,
  encodeGreeting,
  encodeInfoBlockSize,
  encodeInfoExport,
  encodeInfoString,
  encodeMetaContext,
  encodeOptionReply,
  encodeServerEntry,
  HandshakeFlag,
  InfoType,
  MAX_STRING,
  Option,
  OPTION_HEADER_SIZE,
  OPTION_MAGIC,
  OptionReply,
  TransmissionFlag,
  u16At,
  u32At,
} from "./protocol.ts";
import type { NbdStream } from "./stream.ts";

/** The largest read or write payload this server takes in one request. */
export const MAX_PAYLOAD = 32 * 1024 * 1024;
/** The preferred request size announced to clients (`NBD_INFO_BLOCK_SIZE`). */
export const PREFERRED_BLOCK = 4096;
/** Option data longer than this ends the connection (nothing valid is that long). */
export const MAX_OPTION_DATA = 64 * 1024;
/** The id of the `base:allocation` context on every connection. */
export const ALLOCATION_CONTEXT_ID = 1;

/** One export a server offers. */
export interface NbdExport {
  /** Export name (`NBD_OPT_LIST`); the empty name also selects the first export. */
  name: string;
  /** One line shown to clients that ask for it. */
  description: string;
  /** The bytes served. */
  source: BlockSource;
}

/** What the handshake settled for the transmission phase. */
export interface Session {
  /** The export chosen. */
  export: NbdExport;
  /** Structured replies were negotiated. */
  structured: boolean;
  /** The id of the selected `base:allocation` context, or `null` if none was selected. */
  allocationContext: number | null;
  /** The transmission flags sent to the client. */
  flags: number;
}

/** Options of {@linkcode negotiate}. */
export interface HandshakeOptions {
  /** The exports offered. */
  exports: NbdExport[];
  /** True once the server is stopping: options are then refused with `ERR_SHUTDOWN`. */
  shuttingDown?: () => boolean;
  /** Where protocol violations are reported. */
  log?: (message: string) => void;
}

/** The transmission flags of `source` on a connection with or without structured replies. */
export function transmissionFlags(source: BlockSource, structured: boolean): number {
  let f = TransmissionFlag.HasFlags | TransmissionFlag.CanMultiConn;
  if (source.writable) {
    f |= TransmissionFlag.SendFlush | TransmissionFlag.SendFua | TransmissionFlag.SendTrim;
  } else f |= TransmissionFlag.ReadOnly;
  if (structured) f |= TransmissionFlag.SendDf;
  return f;
}

/** A cursor over option data that reports running past its end. */
class OptionData {
  #at = 0;
  constructor(readonly bytes: Uint8Array) {}
  get done(): boolean {
    return this.#at === this.bytes.length;
  }
  u32(): number | null {
    if (this.#at + 4 > this.bytes.length) return null;
    const v = u32At(this.bytes, this.#at);
    this.#at += 4;
    return v;
  }
  u16(): number | null {
    if (this.#at + 2 > this.bytes.length) return null;
    const v = u16At(this.bytes, this.#at);
    this.#at += 2;
    return v;
  }
  /** A string preceded by its 32-bit length. */
  sizedString(): string | null {
    const length = this.u32();
    return length === null ? null : this.string(length);
  }
  string(length: number): string | null {
    if (length > MAX_STRING || this.#at + length > this.bytes.length) return null;
    const s = this.bytes.subarray(this.#at, this.#at + length);
    this.#at += length;
    try {
      return new TextDecoder("utf-8", { fatal: true }).decode(s);
    } catch {
      return null;
    }
  }
}

/** Export name and queries of `LIST_META_CONTEXT`/`SET_META_CONTEXT`, or `null` if malformed. */
function parseMetaQuery(data: Uint8Array): { name: string; queries: string[] } | null {
  const d = new OptionData(data);
  const name = d.sizedString();
  const count = d.u32();
  if (name === null || count === null) return null;
  const queries: string[] = [];
  for (let i = 0; i < count; i++) {
    const q = d.sizedString();
    if (q === null) return null;
    queries.push(q);
  }
  return d.done ? { name, queries } : null;
}

/** Export name and information requests of `INFO`/`GO`, or `null` if malformed. */
function parseInfoRequest(data: Uint8Array): { name: string; infos: number[] } | null {
  const d = new OptionData(data);
  const name = d.sizedString();
  const count = d.u16();
  if (name === null || count === null) return null;
  const infos: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = d.u16();
    if (t === null) return null;
    infos.push(t);
  }
  return d.done ? { name, infos } : null;
}

function findExport(exports: NbdExport[], name: string): NbdExport | undefined {
  return name === "" ? exports[0] : exports.find((e) => e.name === name);
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

/**
 * Run the server side of the handshake on `stream`. Returns the session when
 * the client enters transmission, or `null` when it aborted, left, broke the
 * protocol in a way that forbids going on, or asked for an unknown export
 * with `NBD_OPT_EXPORT_NAME` (all of which end the connection).
 */
export async function negotiate(
  stream: NbdStream,
  options: HandshakeOptions,
): Promise<Session | null> {
  const log = options.log ?? (() => {});
  await stream.send(encodeGreeting(HandshakeFlag.FixedNewstyle | HandshakeFlag.NoZeroes));
  const cf = await stream.readExact(4);
  if (cf === null) return null;
  const clientFlags = u32At(cf, 0);
  if ((clientFlags & ~(ClientFlag.FixedNewstyle | ClientFlag.NoZeroes)) !== 0) {
    log(`client sent unknown handshake flags 0x${clientFlags.toString(16)}; disconnecting`);
    return null;
  }
  const noZeroes = (clientFlags & ClientFlag.NoZeroes) !== 0;
  let structured = false;
  let allocation: { exportName: string } | null = null;
  // base:allocation counts only if it was selected for the export chosen.
  const session = (exp: NbdExport, flags: number): Session => ({
    export: exp,
    structured,
    allocationContext: allocation && findExport(options.exports, allocation.exportName) === exp
      ? ALLOCATION_CONTEXT_ID
      : null,
    flags,
  });

  for (;;) {
    const header = await stream.readExact(OPTION_HEADER_SIZE);
    if (header === null) return null;
    const v = new DataView(header.buffer);
    if (v.getBigUint64(0) !== OPTION_MAGIC) {
      log("client sent an option without the IHAVEOPT magic; disconnecting");
      return null;
    }
    const option = v.getUint32(8);
    const length = v.getUint32(12);
    if (length > MAX_OPTION_DATA) {
      log(`client sent option ${option} with ${length} bytes of data; disconnecting`);
      return null;
    }
    const data = (await stream.readExact(length)) ?? new Uint8Array(0);
    if (data.length !== length) return null;
    const reply = (type: number, payload?: Uint8Array): Promise<void> =>
      stream.send(encodeOptionReply(option, type, payload));

    if (option === Option.Abort) {
      await reply(OptionReply.Ack).catch(() => {});
      return null;
    }
    if (options.shuttingDown?.()) {
      await reply(OptionReply.ErrShutdown, text("the server is shutting down"));
      continue;
    }
    switch (option) {
      case Option.ExportName: {
        const name = new OptionData(data).string(length);
        const exp = name === null ? undefined : findExport(options.exports, name);
        // This option cannot answer an error: the only way to refuse is to hang up.
        if (!exp) {
          log(`client asked for unknown export ${JSON.stringify(name)}; disconnecting`);
          return null;
        }
        const flags = transmissionFlags(exp.source, structured);
        const info = encodeInfoExport(BigInt(exp.source.size), flags).subarray(2);
        await stream.send(info, noZeroes ? new Uint8Array(0) : new Uint8Array(124));
        return session(exp, flags);
      }
      case Option.List: {
        if (length !== 0) {
          await reply(OptionReply.ErrInvalid, text("NBD_OPT_LIST takes no data"));
          break;
        }
        for (const e of options.exports) {
          await reply(OptionReply.Server, encodeServerEntry(e.name, e.description));
        }
        await reply(OptionReply.Ack);
        break;
      }
      case Option.Info:
      case Option.Go: {
        const req = parseInfoRequest(data);
        if (req === null) {
          await reply(OptionReply.ErrInvalid, text("malformed NBD_OPT_INFO/GO data"));
          break;
        }
        const exp = findExport(options.exports, req.name);
        if (!exp) {
          await reply(OptionReply.ErrUnknown, text(`no export named ${JSON.stringify(req.name)}`));
          break;
        }
        const flags = transmissionFlags(exp.source, structured);
        await reply(OptionReply.Info, encodeInfoExport(BigInt(exp.source.size), flags));
        await reply(OptionReply.Info, encodeInfoBlockSize(1, PREFERRED_BLOCK, MAX_PAYLOAD));
        if (req.infos.includes(InfoType.Name)) {
          await reply(OptionReply.Info, encodeInfoString(InfoType.Name, exp.name));
        }
        if (req.infos.includes(InfoType.Description)) {
          await reply(OptionReply.Info, encodeInfoString(InfoType.Description, exp.description));
        }
        await reply(OptionReply.Ack);
        if (option === Option.Go) return session(exp, flags);
        break;
      }
      case Option.StructuredReply: {
        if (length !== 0) {
          await reply(OptionReply.ErrInvalid, text("NBD_OPT_STRUCTURED_REPLY takes no data"));
          break;
        }
        structured = true;
        await reply(OptionReply.Ack);
        break;
      }
      case Option.ListMetaContext:
      case Option.SetMetaContext: {
        const set = option === Option.SetMetaContext;
        // A SET replaces the selection even when it fails.
        if (set) allocation = null;
        if (!structured) {
          await reply(OptionReply.ErrInvalid, text("negotiate structured replies first"));
          break;
        }
        const q = parseMetaQuery(data);
        if (q === null) {
          await reply(OptionReply.ErrInvalid, text("malformed meta context request"));
          break;
        }
        if (!findExport(options.exports, q.name)) {
          await reply(OptionReply.ErrUnknown, text(`no export named ${JSON.stringify(q.name)}`));
          break;
        }
        const matches = set
          ? q.queries.some((s) => s === BASE_ALLOCATION)
          : q.queries.length === 0 || q.queries.some((s) => s === "base:" || s === BASE_ALLOCATION);
        if (matches) {
          await reply(
            OptionReply.MetaContext,
            encodeMetaContext(set ? ALLOCATION_CONTEXT_ID : 0, BASE_ALLOCATION),
          );
          if (set) allocation = { exportName: q.name };
        }
        await reply(OptionReply.Ack);
        break;
      }
      default:
        await reply(OptionReply.ErrUnsup, text(`option ${option} is not supported`));
    }
  }
}

/**
 * The NBD wire protocol: magic numbers, option, reply, command and flag
 * values, and the fixed-size messages of the fixed newstyle handshake and the
 * transmission phase. Pure data and byte layouts, no I/O. Every integer on the
 * wire is big-endian. The source is the protocol's public description,
 * `doc/proto.md` of the NetworkBlockDevice/nbd project.
 *
 * @module
 */

/** `NBDMAGIC`: the first 8 bytes the server sends. */
export const NBD_MAGIC = 0x4e42444d41474943n;
/** `IHAVEOPT`: the second server magic, and the magic of every client option. */
export const OPTION_MAGIC = 0x49484156454f5054n;
/** Magic of a server reply to an option. */
export const OPTION_REPLY_MAGIC = 0x3e889045565a9n;
/** Magic of a transmission request. */
export const REQUEST_MAGIC = 0x25609513;
/** Magic of a simple reply. */
export const SIMPLE_REPLY_MAGIC = 0x67446698;
/** Magic of a structured reply chunk. */
export const STRUCTURED_REPLY_MAGIC = 0x668e33ef;

/** Handshake flags the server sends (16 bits). */
export const HandshakeFlag = {
  /** The server speaks fixed newstyle. */
  FixedNewstyle: 1 << 0,
  /** The server can leave out the 124 zero bytes after `NBD_OPT_EXPORT_NAME`. */
  NoZeroes: 1 << 1,
} as const;

/** Client flags (32 bits) answering the handshake flags. */
export const ClientFlag = {
  /** The client speaks fixed newstyle. */
  FixedNewstyle: 1 << 0,
  /** The client does not want the 124 zero bytes. */
  NoZeroes: 1 << 1,
} as const;

/** Transmission flags (16 bits) describing an export. */
export const TransmissionFlag = {
  /** Always set. */
  HasFlags: 1 << 0,
  /** Writes are refused. */
  ReadOnly: 1 << 1,
  /** `NBD_CMD_FLUSH` is understood. */
  SendFlush: 1 << 2,
  /** `NBD_CMD_FLAG_FUA` is understood. */
  SendFua: 1 << 3,
  /** `NBD_CMD_TRIM` is understood. */
  SendTrim: 1 << 5,
  /** `NBD_CMD_FLAG_DF` is understood (structured replies only). */
  SendDf: 1 << 7,
  /** Several connections see one state (shared cache, flush visible to all). */
  CanMultiConn: 1 << 8,
  /** `NBD_CMD_CACHE` is understood. */
  SendCache: 1 << 10,
} as const;

/** Option numbers a client sends during the handshake. */
export const Option = {
  ExportName: 1,
  Abort: 2,
  List: 3,
  StartTls: 5,
  Info: 6,
  Go: 7,
  StructuredReply: 8,
  ListMetaContext: 9,
  SetMetaContext: 10,
  ExtendedHeaders: 11,
} as const;

/** Option reply types; errors have bit 31 set. */
export const OptionReply = {
  Ack: 1,
  Server: 2,
  Info: 3,
  MetaContext: 4,
  ErrUnsup: 0x80000001,
  ErrPolicy: 0x80000002,
  ErrInvalid: 0x80000003,
  ErrPlatform: 0x80000004,
  ErrTlsReqd: 0x80000005,
  ErrUnknown: 0x80000006,
  ErrShutdown: 0x80000007,
  ErrBlockSizeReqd: 0x80000008,
  ErrTooBig: 0x80000009,
} as const;

/** Information types of `NBD_REP_INFO` (answers to `NBD_OPT_INFO`/`NBD_OPT_GO`). */
export const InfoType = {
  Export: 0,
  Name: 1,
  Description: 2,
  BlockSize: 3,
} as const;

/** Transmission commands. */
export const Command = {
  Read: 0,
  Write: 1,
  Disc: 2,
  Flush: 3,
  Trim: 4,
  Cache: 5,
  WriteZeroes: 6,
  BlockStatus: 7,
} as const;

/** Command flags (16 bits) of a request. */
export const CommandFlag = {
  Fua: 1 << 0,
  NoHole: 1 << 1,
  Df: 1 << 2,
  ReqOne: 1 << 3,
  FastZero: 1 << 4,
} as const;

/** Structured reply chunk types; error chunks have bit 15 set. */
export const ReplyType = {
  None: 0,
  OffsetData: 1,
  OffsetHole: 2,
  BlockStatus: 5,
  Error: 0x8001,
  ErrorOffset: 0x8002,
} as const;

/** Flag of a structured reply chunk: the last chunk of its reply. */
export const REPLY_FLAG_DONE = 1;

/** Error values of replies (the protocol's fixed subset of Linux errno). */
export const NbdErrno = {
  EPERM: 1,
  EIO: 5,
  ENOMEM: 12,
  EINVAL: 22,
  ENOSPC: 28,
  EOVERFLOW: 75,
  ENOTSUP: 95,
  ESHUTDOWN: 108,
} as const;
/** One of {@linkcode NbdErrno}. */
export type NbdErrno = typeof NbdErrno[keyof typeof NbdErrno];

/** `base:allocation` status: the extent is not allocated. */
export const STATE_HOLE = 1;
/** `base:allocation` status: the extent reads as zeros. */
export const STATE_ZERO = 2;
/** The one metadata context this server offers. */
export const BASE_ALLOCATION = "base:allocation";

/** Size of a request header. */
export const REQUEST_SIZE = 28;
/** Size of an option header (magic, option, length). */
export const OPTION_HEADER_SIZE = 16;
/** Size of a structured reply chunk header. */
export const STRUCTURED_HEADER_SIZE = 20;
/** Size of a simple reply header. */
export const SIMPLE_HEADER_SIZE = 16;
/** The longest string (export name, query, message) the protocol allows. */
export const MAX_STRING = 4096;

/** A decoded transmission request header. */
export interface Request {
  /** Command flags. */
  flags: number;
  /** Command type ({@linkcode Command}). */
  type: number;
  /** Opaque handle echoed in the reply (8 bytes, kept as a bigint). */
  handle: bigint;
  /** Byte offset in the export. */
  offset: bigint;
  /** Byte length. */
  length: number;
}

/**
 * Decode a 28-byte request header; `null` if the magic is wrong (the stream
 * cannot be resynchronised after that).
 *
 * @example
 * ```ts
 * import { decodeRequest, encodeRequest } from "./protocol.ts";
 * const r = decodeRequest(encodeRequest({ flags: 0, type: 0, handle: 7n, offset: 512n, length: 4096 }));
 * console.log(r?.length); // 4096
 * ```
 */
export function decodeRequest(bytes: Uint8Array): Request | null {
  const v = new DataView(bytes.buffer, bytes.byteOffset, REQUEST_SIZE);
  if (v.getUint32(0) !== REQUEST_MAGIC) return null;
  return {
    flags: v.getUint16(4),
    type: v.getUint16(6),
    handle: v.getBigUint64(8),
    offset: v.getBigUint64(16),
    length: v.getUint32(24),
  };
}

/** Encode a request header (what a client sends; used by tests and probes). */
export function encodeRequest(r: Request): Uint8Array {
  const out = new Uint8Array(REQUEST_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, REQUEST_MAGIC);
  v.setUint16(4, r.flags);
  v.setUint16(6, r.type);
  v.setBigUint64(8, r.handle);
  v.setBigUint64(16, r.offset);
  v.setUint32(24, r.length);
  return out;
}

/** The 16-byte header of a simple reply. */
export function encodeSimpleReply(error: number, handle: bigint): Uint8Array {
  const out = new Uint8Array(SIMPLE_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, SIMPLE_REPLY_MAGIC);
  v.setUint32(4, error);
  v.setBigUint64(8, handle);
  return out;
}

/** The 20-byte header of a structured reply chunk carrying `length` payload bytes. */
export function encodeStructuredHeader(
  flags: number,
  type: number,
  handle: bigint,
  length: number,
): Uint8Array {
  const out = new Uint8Array(STRUCTURED_HEADER_SIZE);
  const v = new DataView(out.buffer);
  v.setUint32(0, STRUCTURED_REPLY_MAGIC);
  v.setUint16(4, flags);
  v.setUint16(6, type);
  v.setBigUint64(8, handle);
  v.setUint32(16, length);
  return out;
}

/** An option reply: header (magic, option, type, length) and its data. */
export function encodeOptionReply(option: number, type: number, data?: Uint8Array): Uint8Array {
  const len = data?.length ?? 0;
  const out = new Uint8Array(20 + len);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, OPTION_REPLY_MAGIC);
  v.setUint32(8, option);
  v.setUint32(12, type);
  v.setUint32(16, len);
  if (data) out.set(data, 20);
  return out;
}

/** The server's greeting: `NBDMAGIC`, `IHAVEOPT`, handshake flags. */
export function encodeGreeting(handshakeFlags: number): Uint8Array {
  const out = new Uint8Array(18);
  const v = new DataView(out.buffer);
  v.setBigUint64(0, NBD_MAGIC);
  v.setBigUint64(8, OPTION_MAGIC);
  v.setUint16(16, handshakeFlags);
  return out;
}

/** `NBD_INFO_EXPORT` payload: type, size, transmission flags. */
export function encodeInfoExport(size: bigint, flags: number): Uint8Array {
  const out = new Uint8Array(12);
  const v = new DataView(out.buffer);
  v.setUint16(0, InfoType.Export);
  v.setBigUint64(2, size);
  v.setUint16(10, flags);
  return out;
}

/** `NBD_INFO_BLOCK_SIZE` payload: type, minimum, preferred, maximum payload. */
export function encodeInfoBlockSize(min: number, preferred: number, max: number): Uint8Array {
  const out = new Uint8Array(14);
  const v = new DataView(out.buffer);
  v.setUint16(0, InfoType.BlockSize);
  v.setUint32(2, min);
  v.setUint32(6, preferred);
  v.setUint32(10, max);
  return out;
}

/** `NBD_INFO_NAME` or `NBD_INFO_DESCRIPTION` payload: type and a string. */
export function encodeInfoString(type: number, text: string): Uint8Array {
  const s = new TextEncoder().encode(text);
  const out = new Uint8Array(2 + s.length);
  new DataView(out.buffer).setUint16(0, type);
  out.set(s, 2);
  return out;
}

/** `NBD_REP_SERVER` data: name length, name, description. */
export function encodeServerEntry(name: string, description: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  const d = new TextEncoder().encode(description);
  const out = new Uint8Array(4 + n.length + d.length);
  new DataView(out.buffer).setUint32(0, n.length);
  out.set(n, 4);
  out.set(d, 4 + n.length);
  return out;
}

/** `NBD_REP_META_CONTEXT` data: context id and name. */
export function encodeMetaContext(id: number, name: string): Uint8Array {
  const n = new TextEncoder().encode(name);
  const out = new Uint8Array(4 + n.length);
  new DataView(out.buffer).setUint32(0, id);
  out.set(n, 4);
  return out;
}

/** A structured error chunk payload (`NBD_REPLY_TYPE_ERROR[_OFFSET]`). */
export function encodeErrorPayload(error: number, message: string, offset?: bigint): Uint8Array {
  // The message is cut at a character boundary below the protocol's limit.
  let m = new TextEncoder().encode(message);
  if (m.length > 1024) m = new TextEncoder().encode(message.slice(0, 1000) + "...");
  const out = new Uint8Array(6 + m.length + (offset === undefined ? 0 : 8));
  const v = new DataView(out.buffer);
  v.setUint32(0, error);
  v.setUint16(4, m.length);
  out.set(m, 6);
  if (offset !== undefined) v.setBigUint64(6 + m.length, offset);
  return out;
}

/** A status descriptor of a block status reply. */
export interface StatusDescriptor {
  /** Bytes covered (non-zero, below 2^32). */
  length: number;
  /** `base:allocation` flags ({@linkcode STATE_HOLE}, {@linkcode STATE_ZERO}). */
  flags: number;
}

/** `NBD_REPLY_TYPE_BLOCK_STATUS` payload: context id, then (length, flags) pairs. */
export function encodeBlockStatus(contextId: number, descriptors: StatusDescriptor[]): Uint8Array {
  const out = new Uint8Array(4 + 8 * descriptors.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, contextId);
  descriptors.forEach((d, i) => {
    v.setUint32(4 + 8 * i, d.length);
    v.setUint32(8 + 8 * i, d.flags);
  });
  return out;
}

/** Read a big-endian u32 at `at` of `bytes`. */
export function u32At(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint32(at);
}

/** Read a big-endian u16 at `at` of `bytes`. */
export function u16At(bytes: Uint8Array, at: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getUint16(at);
}

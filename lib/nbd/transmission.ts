/**
 * The transmission phase, server side: read requests, serve them
 * concurrently (up to a window per connection), and answer each with a simple
 * reply or, when negotiated, structured reply chunks. Every request that can
 * be parsed gets an answer: a bad one an NBD error, a failed range of a read
 * `EIO` for that range. Only a request without the request magic (the stream
 * cannot be resynchronised) or a client that breaks the connection ends it.
 *
 * @module
 */

import { type Extent, nbdErrnoOf, piecesToBytes, type ReadPiece } from "./block_source.ts";
import { MAX_PAYLOAD, type Session } from "./handshake.ts";
import {
  Command,
  CommandFlag,
  decodeRequest,
  encodeBlockStatus,
  encodeErrorPayload,
  encodeSimpleReply,
  encodeStructuredHeader,
  NbdErrno,
  REPLY_FLAG_DONE,
  ReplyType,
  type Request,
  REQUEST_SIZE,
  STATE_HOLE,
  STATE_ZERO,
  type StatusDescriptor,
  TransmissionFlag,
} from "./protocol.ts";
import type { NbdStream } from "./stream.ts";

/** Most descriptors sent in one block status reply (the protocol allows 2^20). */
export const MAX_STATUS_DESCRIPTORS = 65536;

/** Options of {@linkcode transmit}. */
export interface TransmitOptions {
  /** Requests served at once on this connection. @default 64 */
  window?: number;
  /** True once the server is stopping: new requests get `ESHUTDOWN`. */
  shuttingDown?: () => boolean;
  /** Resolves when the server stops: no further request is read, those in flight are answered. */
  stop?: Promise<void>;
  /** Where failures and protocol violations are reported. */
  log?: (message: string) => void;
}

/** Why a transmission phase ended. */
export type TransmitEnd = "disconnect" | "closed" | "bad-magic" | "shutdown" | "truncated";

const STOPPED = Symbol("stopped");

class RequestError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
  }
}

const COMMAND_FLAGS: Record<number, number> = {
  [Command.Read]: CommandFlag.Fua | CommandFlag.Df,
  [Command.Write]: CommandFlag.Fua,
  [Command.Disc]: CommandFlag.Fua,
  [Command.Flush]: CommandFlag.Fua,
  [Command.Trim]: CommandFlag.Fua,
  [Command.BlockStatus]: CommandFlag.Fua | CommandFlag.ReqOne,
};

/**
 * Check a request against the session; throws {@linkcode RequestError} with
 * the NBD error to answer. Pure: no I/O.
 */
export function checkRequest(session: Session, r: Request): void {
  const { source } = session.export;
  const allowed = COMMAND_FLAGS[r.type];
  if (allowed === undefined) throw new RequestError(NbdErrno.EINVAL, `unknown command ${r.type}`);
  let flags = allowed;
  if ((session.flags & TransmissionFlag.SendFua) === 0) flags &= ~CommandFlag.Fua;
  if ((session.flags & TransmissionFlag.SendDf) === 0) flags &= ~CommandFlag.Df;
  if ((r.flags & ~flags) !== 0) {
    throw new RequestError(NbdErrno.EINVAL, `flags 0x${r.flags.toString(16)} not valid here`);
  }
  const end = r.offset + BigInt(r.length);
  const inside = end <= BigInt(source.size);
  switch (r.type) {
    case Command.Read:
      if (!inside) throw new RequestError(NbdErrno.EINVAL, "read beyond the end of the export");
      if (r.length > MAX_PAYLOAD) {
        throw new RequestError(NbdErrno.EOVERFLOW, `read of ${r.length} bytes is too large`);
      }
      return;
    case Command.Write:
    case Command.Trim:
      if (!source.writable) throw new RequestError(NbdErrno.EPERM, "the export is read-only");
      if (!inside) throw new RequestError(NbdErrno.ENOSPC, "write beyond the end of the export");
      if (r.type === Command.Write && r.length > MAX_PAYLOAD) {
        throw new RequestError(NbdErrno.EOVERFLOW, `write of ${r.length} bytes is too large`);
      }
      return;
    case Command.Flush:
      if (!source.writable) throw new RequestError(NbdErrno.EINVAL, "flush was not offered");
      return;
    case Command.BlockStatus:
      if (session.allocationContext === null) {
        throw new RequestError(NbdErrno.EINVAL, "no metadata context was selected");
      }
      if (!inside) throw new RequestError(NbdErrno.EINVAL, "status beyond the end of the export");
      if (r.length === 0) throw new RequestError(NbdErrno.EINVAL, "status of zero bytes");
      return;
  }
}

/** `base:allocation` descriptors of `extents`, clipped to the request. */
export function statusDescriptors(
  extents: Extent[],
  length: number,
  reqOne: boolean,
): StatusDescriptor[] {
  const out: StatusDescriptor[] = [];
  let covered = 0;
  for (const e of extents) {
    if (covered >= length || out.length >= MAX_STATUS_DESCRIPTORS) break;
    const len = Math.min(e.length, length - covered);
    if (len <= 0) continue;
    const flags = (e.hole ? STATE_HOLE : 0) | (e.zero ? STATE_ZERO : 0);
    const last = out[out.length - 1];
    if (last && last.flags === flags) last.length += len;
    else out.push({ length: len, flags });
    covered += len;
    if (reqOne) break;
  }
  return reqOne ? out.slice(0, 1) : out;
}

/**
 * Serve requests of `session` on `stream` until the client disconnects (or
 * breaks the protocol, or the server shuts down). Resolves when every request
 * read has been answered.
 */
export async function transmit(
  stream: NbdStream,
  session: Session,
  options: TransmitOptions = {},
): Promise<TransmitEnd> {
  const log = options.log ?? (() => {});
  const window = Math.max(1, options.window ?? 64);
  const inFlight = new Set<Promise<void>>();
  const { source } = session.export;

  const chunk = (r: Request, type: number, payload: Uint8Array, done: boolean): Uint8Array[] => [
    encodeStructuredHeader(done ? REPLY_FLAG_DONE : 0, type, r.handle, payload.length),
    payload,
  ];

  const replyError = (r: Request, errno: number, message: string): Promise<void> => {
    if (!session.structured) return stream.send(encodeSimpleReply(errno, r.handle));
    return stream.send(...chunk(r, ReplyType.Error, encodeErrorPayload(errno, message), true));
  };
  const replyOk = (r: Request): Promise<void> => stream.send(encodeSimpleReply(0, r.handle));

  const replyRead = (r: Request, pieces: ReadPiece[]): Promise<void> => {
    const offset = Number(r.offset);
    if (!session.structured) {
      const failed = pieces.find((p) => p.kind === "error");
      if (failed) return replyError(r, failed.errno, failed.message);
      const data = piecesToBytes(pieces, offset, r.length);
      return stream.send(encodeSimpleReply(0, r.handle), data);
    }
    if (r.length === 0) return stream.send(...chunk(r, ReplyType.None, new Uint8Array(0), true));
    // Don't fragment: one data chunk with zeros filled in, unless a range failed.
    const failed = pieces.filter((p) => p.kind === "error");
    if ((r.flags & CommandFlag.Df) !== 0 && failed.length === 0) {
      const data = piecesToBytes(pieces, offset, r.length);
      const payload = new Uint8Array(8 + data.length);
      new DataView(payload.buffer).setBigUint64(0, r.offset);
      payload.set(data, 8);
      return stream.send(...chunk(r, ReplyType.OffsetData, payload, true));
    }
    // Neighbouring runs of zeros go out as one hole.
    const merged: ReadPiece[] = [];
    for (const p of pieces) {
      const last = merged[merged.length - 1];
      if (p.kind === "zero" && last?.kind === "zero") {
        merged[merged.length - 1] = { ...last, length: last.length + p.length };
      } else merged.push(p);
    }
    const out: Uint8Array[][] = [];
    merged.forEach((p, i) => {
      const done = i === merged.length - 1;
      if (p.kind === "data") {
        const head = new Uint8Array(8);
        new DataView(head.buffer).setBigUint64(0, BigInt(p.offset));
        out.push([
          encodeStructuredHeader(
            done ? REPLY_FLAG_DONE : 0,
            ReplyType.OffsetData,
            r.handle,
            8 + p.data.length,
          ),
          head,
          p.data,
        ]);
      } else if (p.kind === "zero") {
        const payload = new Uint8Array(12);
        const v = new DataView(payload.buffer);
        v.setBigUint64(0, BigInt(p.offset));
        v.setUint32(8, p.length);
        out.push(chunk(r, ReplyType.OffsetHole, payload, done));
      } else {
        out.push(
          chunk(
            r,
            ReplyType.ErrorOffset,
            encodeErrorPayload(p.errno, p.message, BigInt(p.offset)),
            done,
          ),
        );
      }
    });
    return stream.send(...out.flat());
  };

  const serve = async (r: Request, payload: Uint8Array | null): Promise<void> => {
    try {
      if (options.shuttingDown?.()) {
        return await replyError(r, NbdErrno.ESHUTDOWN, "the server is shutting down");
      }
      checkRequest(session, r);
      const offset = Number(r.offset);
      switch (r.type) {
        case Command.Read: {
          const pieces = r.length === 0 ? [] : await source.read(offset, r.length);
          return await replyRead(r, pieces);
        }
        case Command.Write:
          if (r.length > 0) {
            await source.write!(offset, payload!, (r.flags & CommandFlag.Fua) !== 0);
          }
          return await replyOk(r);
        case Command.Flush:
          await source.flush!();
          return await replyOk(r);
        case Command.Trim:
          if (r.length > 0) await source.trim!(offset, r.length);
          if ((r.flags & CommandFlag.Fua) !== 0) await source.flush!();
          return await replyOk(r);
        case Command.BlockStatus: {
          const extents = await source.extents(offset, r.length);
          const d = statusDescriptors(extents, r.length, (r.flags & CommandFlag.ReqOne) !== 0);
          if (d.length === 0) throw new RequestError(NbdErrno.EIO, "no allocation information");
          const payload = encodeBlockStatus(session.allocationContext!, d);
          return await stream.send(...chunk(r, ReplyType.BlockStatus, payload, true));
        }
      }
    } catch (e) {
      if (stream.closed) return;
      const errno = e instanceof RequestError ? e.errno : nbdErrnoOf(e);
      const message = e instanceof Error ? e.message : String(e);
      if (!(e instanceof RequestError)) {
        log(`request ${commandName(r.type)} at ${r.offset}+${r.length} failed: ${message}`);
      }
      await replyError(r, errno, message).catch(() => {});
    }
  };

  // One listener on the stop signal for the whole connection (racing it per
  // request would pile a reaction onto it for every request served).
  let stopped = false;
  let wake: ((v: typeof STOPPED) => void) | null = null;
  options.stop?.then(() => {
    stopped = true;
    wake?.(STOPPED);
  });
  const settle = async (): Promise<void> => {
    await Promise.all(inFlight);
  };
  try {
    for (;;) {
      while (inFlight.size >= window) await Promise.race(inFlight);
      const reading = stopped ? null : stream.readExact(REQUEST_SIZE);
      const header = reading === null
        ? STOPPED
        : await new Promise<Uint8Array | null | typeof STOPPED>(
          (resolve, reject) => {
            wake = resolve;
            reading.then(resolve, reject);
          },
        );
      wake = null;
      if (header === STOPPED) {
        // The pending read ends when the connection is closed; nothing waits for it.
        reading?.catch(() => {});
        await settle();
        return "shutdown";
      }
      if (header === null) {
        await settle();
        return options.shuttingDown?.() ? "shutdown" : "closed";
      }
      const r = decodeRequest(header);
      if (r === null) {
        log("request without the request magic; disconnecting");
        await settle();
        return "bad-magic";
      }
      if (r.type === Command.Disc) {
        await settle();
        return "disconnect";
      }
      let payload: Uint8Array | null = null;
      if (r.type === Command.Write) {
        // The payload follows the header whatever happens to the request; one
        // that is refused is read and dropped so the next header is found.
        if (r.length <= MAX_PAYLOAD) {
          payload = await stream.readExact(r.length) ?? new Uint8Array(0);
          if (payload.length !== r.length) return "truncated";
        } else await stream.skip(r.length);
      }
      const p: Promise<void> = serve(r, payload).finally(() => inFlight.delete(p));
      inFlight.add(p);
    }
  } catch (e) {
    await settle();
    if (options.shuttingDown?.()) return "shutdown";
    if (e instanceof Error && e.name === "TruncatedError") return "truncated";
    return "closed";
  }
}

/** A command's name for messages. */
export function commandName(type: number): string {
  const name = Object.entries(Command).find(([, v]) => v === type)?.[0];
  return name ? name.toUpperCase() : `command ${type}`;
}

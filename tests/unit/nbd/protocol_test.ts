import assert from "node:assert/strict";
import { fc } from "../../_deps.ts";
import {
  Command,
  CommandFlag,
  decodeRequest,
  encodeErrorPayload,
  encodeOptionReply,
  encodeRequest,
  encodeStructuredHeader,
  NbdErrno,
  REQUEST_SIZE,
  STATE_HOLE,
  STATE_ZERO,
  TransmissionFlag,
} from "../../../lib/nbd/protocol.ts";
import { checkRequest, statusDescriptors } from "../../../lib/nbd/transmission.ts";
import { type Session, transmissionFlags } from "../../../lib/nbd/handshake.ts";
import { mergeExtents } from "../../../lib/nbd/block_source.ts";
import { MemorySource } from "./_memory_source.ts";

Deno.test("decodeRequest() inverts encodeRequest() for every field value", () => {
  fc.assert(fc.property(
    fc.integer({ min: 0, max: 0xffff }),
    fc.integer({ min: 0, max: 0xffff }),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }),
    fc.integer({ min: 0, max: 0xffffffff }),
    (flags, type, handle, offset, length) => {
      const r = { flags, type, handle, offset, length };
      const bytes = encodeRequest(r);
      assert.equal(bytes.length, REQUEST_SIZE);
      assert.deepEqual(decodeRequest(bytes), r);
    },
  ));
});

Deno.test("decodeRequest() refuses a header without the request magic", () => {
  const bytes = encodeRequest({ flags: 0, type: 0, handle: 1n, offset: 0n, length: 512 });
  bytes[0] ^= 1;
  assert.equal(decodeRequest(bytes), null);
});

Deno.test("wire layouts: option reply, structured header, error payload (big-endian)", () => {
  const r = encodeOptionReply(7, 0x80000006, new Uint8Array([9, 9]));
  assert.deepEqual([...r.subarray(0, 8)], [0, 3, 0xe8, 0x89, 0x04, 0x55, 0x65, 0xa9]);
  assert.deepEqual([...r.subarray(8, 22)], [0, 0, 0, 7, 0x80, 0, 0, 6, 0, 0, 0, 2, 9, 9]);
  const h = encodeStructuredHeader(1, 2, 0x0102030405060708n, 12);
  assert.deepEqual([...h], [
    0x66,
    0x8e,
    0x33,
    0xef,
    0,
    1,
    0,
    2,
    1,
    2,
    3,
    4,
    5,
    6,
    7,
    8,
    0,
    0,
    0,
    12,
  ]);
  const e = encodeErrorPayload(5, "bad", 16n);
  assert.equal(e.length, 4 + 2 + 3 + 8);
  assert.deepEqual([...e.subarray(0, 9)], [0, 0, 0, 5, 0, 3, 98, 97, 100]);
  assert.equal(new DataView(e.buffer).getBigUint64(9), 16n);
  // A long message is cut below the protocol's 4096-byte string limit.
  assert.ok(encodeErrorPayload(5, "x".repeat(10000)).length < 4096);
});

function session(
  writable: boolean,
  structured: boolean,
  allocation: boolean,
  size = 1 << 20,
): Session {
  // Only size and writable matter to the checks.
  const source = { ...new MemorySource(new Uint8Array(0), { writable }), size } as MemorySource;
  return {
    export: { name: "", description: "", source },
    structured,
    allocationContext: allocation ? 1 : null,
    flags: transmissionFlags(source, structured),
  };
}

function errnoOf(s: Session, r: Parameters<typeof checkRequest>[1]): number {
  try {
    checkRequest(s, r);
    return 0;
  } catch (e) {
    return (e as { errno: number }).errno;
  }
}

Deno.test("transmissionFlags(): read-only exports refuse writes, writable ones offer flush, FUA and trim", () => {
  const ro = session(false, false, false).flags;
  assert.ok(ro & TransmissionFlag.ReadOnly);
  assert.equal(ro & TransmissionFlag.SendFlush, 0);
  const rw = session(true, true, false).flags;
  assert.equal(rw & TransmissionFlag.ReadOnly, 0);
  for (
    const f of [TransmissionFlag.SendFlush, TransmissionFlag.SendFua, TransmissionFlag.SendTrim]
  ) {
    assert.ok(rw & f);
  }
  assert.ok(rw & TransmissionFlag.SendDf, "DF only with structured replies");
  assert.equal(ro & TransmissionFlag.SendDf, 0);
});

Deno.test("checkRequest() answers every bad request with the protocol's error", () => {
  const ro = session(false, false, false);
  const rw = session(true, true, true);
  const req = (type: number, offset: number | bigint, length: number, flags = 0) => ({
    type,
    flags,
    handle: 1n,
    offset: BigInt(offset),
    length,
  });
  const size = 1 << 20;
  assert.equal(errnoOf(ro, req(Command.Read, 0, 4096)), 0);
  assert.equal(errnoOf(ro, req(Command.Read, size - 512, 512)), 0);
  assert.equal(errnoOf(ro, req(Command.Read, size - 512, 1024)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(Command.Read, 2n ** 64n - 1n, 1)), NbdErrno.EINVAL);
  const big = session(true, true, true, 2 ** 40);
  assert.equal(errnoOf(big, req(Command.Read, 0, 64 << 20)), NbdErrno.EOVERFLOW);
  assert.equal(errnoOf(big, req(Command.Write, 0, 64 << 20)), NbdErrno.EOVERFLOW);
  assert.equal(errnoOf(ro, req(Command.Write, 0, 512)), NbdErrno.EPERM);
  assert.equal(errnoOf(ro, req(Command.Trim, 0, 512)), NbdErrno.EPERM);
  assert.equal(errnoOf(ro, req(Command.Flush, 0, 0)), NbdErrno.EINVAL);
  assert.equal(errnoOf(rw, req(Command.Write, size, 512)), NbdErrno.ENOSPC);
  assert.equal(errnoOf(rw, req(Command.Write, 0, 512, CommandFlag.Fua)), 0);
  assert.equal(errnoOf(ro, req(Command.Read, 0, 512, CommandFlag.Fua)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(Command.Read, 0, 512, CommandFlag.Df)), NbdErrno.EINVAL);
  assert.equal(errnoOf(rw, req(Command.Read, 0, 512, CommandFlag.Df)), 0);
  assert.equal(errnoOf(rw, req(Command.Read, 0, 512, 1 << 12)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(Command.WriteZeroes, 0, 512)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(Command.Cache, 0, 512)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(42, 0, 512)), NbdErrno.EINVAL);
  assert.equal(errnoOf(ro, req(Command.BlockStatus, 0, 512)), NbdErrno.EINVAL);
  assert.equal(errnoOf(rw, req(Command.BlockStatus, 0, 512, CommandFlag.ReqOne)), 0);
  assert.equal(errnoOf(rw, req(Command.BlockStatus, 0, 0)), NbdErrno.EINVAL);
  assert.equal(errnoOf(rw, req(Command.BlockStatus, size, 1)), NbdErrno.EINVAL);
});

Deno.test("statusDescriptors() clips to the request, joins equal states, honours REQ_ONE", () => {
  const extents = [
    { length: 4096, hole: true, zero: true },
    { length: 8192, hole: false, zero: false },
    { length: 8192, hole: false, zero: false },
    { length: 4096, hole: true, zero: true },
  ];
  assert.deepEqual(statusDescriptors(extents, 10000, false), [
    { length: 4096, flags: STATE_HOLE | STATE_ZERO },
    { length: 5904, flags: 0 },
  ]);
  assert.deepEqual(statusDescriptors(extents, 1 << 20, true), [
    { length: 4096, flags: STATE_HOLE | STATE_ZERO },
  ]);
  assert.deepEqual(statusDescriptors(extents, 100, true), [
    { length: 100, flags: STATE_HOLE | STATE_ZERO },
  ]);
  assert.equal(statusDescriptors(extents, 1 << 20, false).reduce((n, d) => n + d.length, 0), 24576);
});

Deno.test("mergeExtents() keeps the total length and never leaves two equal neighbours", () => {
  fc.assert(fc.property(
    fc.array(fc.record({
      length: fc.integer({ min: 0, max: 100 }),
      hole: fc.boolean(),
      zero: fc.boolean(),
    })),
    (ex) => {
      const m = mergeExtents(ex);
      assert.equal(m.reduce((n, e) => n + e.length, 0), ex.reduce((n, e) => n + e.length, 0));
      for (let i = 1; i < m.length; i++) {
        assert.ok(m[i].hole !== m[i - 1].hole || m[i].zero !== m[i - 1].zero);
      }
      assert.ok(m.every((e) => e.length > 0));
    },
  ));
});

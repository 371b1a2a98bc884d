// The NBD server over a Unix socket, driven by the test client: the
// handshake's options (good, unknown, malformed), the transmission phase's
// replies (simple and structured, holes, failed ranges, bad requests), many
// clients, and stopping with requests in flight.

import assert from "node:assert/strict";
import { join } from "node:path";
import { NbdServer } from "../../../lib/nbd/server.ts";
import {
  ClientFlag,
  Command,
  CommandFlag,
  InfoType,
  NbdErrno,
  Option,
  OptionReply,
  ReplyType,
  STATE_HOLE,
  STATE_ZERO,
  TransmissionFlag,
} from "../../../lib/nbd/protocol.ts";
import { TestClient } from "./_client.ts";
import { MemorySource } from "./_memory_source.ts";
import { pseudoRandom } from "../backup/_helpers.ts";

const SIZE = 256 * 1024;

/** 256 KiB: grains 0, 5, 6 and the last are zeros, the rest pseudo-random. */
function image(): Uint8Array {
  const img = pseudoRandom(SIZE, 7);
  for (const g of [0, 5, 6, 63]) img.fill(0, g * 4096, (g + 1) * 4096);
  return img;
}

async function withServer(
  source: MemorySource,
  fn: (socket: string, server: NbdServer, log: string[]) => Promise<void>,
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-nbd-test-" });
  const socket = join(dir, "nbd.sock");
  const log: string[] = [];
  const server = await NbdServer.listen({ socket }, {
    exports: [{ name: "disk", description: "test disk", source }],
    log: (m) => log.push(m),
  });
  try {
    await fn(socket, server, log);
  } finally {
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("handshake: LIST, INFO (export, block size, name, description), then GO", async () => {
  const img = image();
  await withServer(new MemorySource(img), async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      const flags = await c.greet(ClientFlag.FixedNewstyle | ClientFlag.NoZeroes);
      assert.equal(flags, 3, "fixed newstyle and no zeroes");
      const list = await c.option(Option.List);
      assert.deepEqual(list.map((r) => r.type), [OptionReply.Server, OptionReply.Ack]);
      assert.equal(new TextDecoder().decode(list[0].data.subarray(4, 8)), "disk");
      const info = await c.option(
        Option.Info,
        TestClient.infoData("disk", [InfoType.Name, InfoType.Description, InfoType.BlockSize]),
      );
      assert.equal(info.at(-1)!.type, OptionReply.Ack);
      const byType = new Map(
        info.slice(0, -1).map((r) => [new DataView(r.data.buffer).getUint16(0), r.data]),
      );
      const exp = new DataView(byType.get(InfoType.Export)!.buffer);
      assert.equal(exp.getBigUint64(2), BigInt(SIZE));
      assert.ok(exp.getUint16(10) & TransmissionFlag.ReadOnly);
      const bs = new DataView(byType.get(InfoType.BlockSize)!.buffer);
      assert.deepEqual([bs.getUint32(2), bs.getUint32(6), bs.getUint32(10)], [1, 4096, 32 << 20]);
      assert.equal(
        new TextDecoder().decode(byType.get(InfoType.Description)!.subarray(2)),
        "test disk",
      );
      const go = await c.option(Option.Go, TestClient.infoData(""));
      assert.equal(go.at(-1)!.type, OptionReply.Ack);
      const r = await c.read(4096, 8192);
      assert.equal(r.error, 0);
      assert.deepEqual(r.data, img.subarray(4096, 12288));
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("handshake: unknown, TLS and malformed options get errors and the client goes on", async () => {
  await withServer(new MemorySource(image()), async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.greet();
      const type = async (opt: number, data?: Uint8Array) =>
        (await c.option(opt, data)).at(-1)!.type;
      assert.equal(await type(99), OptionReply.ErrUnsup);
      assert.equal(await type(Option.StartTls), OptionReply.ErrUnsup);
      assert.equal(await type(Option.ExtendedHeaders), OptionReply.ErrUnsup);
      assert.equal(await type(Option.List, new Uint8Array(3)), OptionReply.ErrInvalid);
      assert.equal(await type(Option.Info, new Uint8Array(3)), OptionReply.ErrInvalid);
      // name length pointing past the data
      assert.equal(
        await type(Option.Go, new Uint8Array([0, 0, 1, 0, 0, 0])),
        OptionReply.ErrInvalid,
      );
      assert.equal(await type(Option.Go, TestClient.infoData("nope")), OptionReply.ErrUnknown);
      assert.equal(
        await type(Option.SetMetaContext, TestClient.metaData("", ["base:allocation"])),
        OptionReply.ErrInvalid,
        "meta contexts need structured replies first",
      );
      assert.equal(await type(Option.StructuredReply, new Uint8Array(1)), OptionReply.ErrInvalid);
      assert.equal(await type(Option.StructuredReply), OptionReply.Ack);
      const list = await c.option(Option.ListMetaContext, TestClient.metaData("disk", []));
      assert.deepEqual(list.map((r) => r.type), [OptionReply.MetaContext, OptionReply.Ack]);
      assert.equal(new TextDecoder().decode(list[0].data.subarray(4)), "base:allocation");
      const other = await c.option(
        Option.SetMetaContext,
        TestClient.metaData("disk", ["qemu:dirty-bitmap:x"]),
      );
      assert.deepEqual(other.map((r) => r.type), [OptionReply.Ack], "unknown contexts are ignored");
      assert.equal(
        await type(
          Option.SetMetaContext,
          TestClient.metaData("disk", ["base:allocation"]).subarray(0, 10),
        ),
        OptionReply.ErrInvalid,
      );
      // Still usable: GO works after all that.
      assert.equal(await type(Option.Go, TestClient.infoData("disk")), OptionReply.Ack);
      c.structured = true;
      const r = await c.read(0, 512);
      assert.equal(r.error, 0);
      // base:allocation was not selected in the end (the last SET failed): no block status.
      assert.equal((await c.blockStatus(0, 4096)).error, NbdErrno.EINVAL);
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("handshake: ABORT, unknown client flags, a broken magic, a huge option and EXPORT_NAME of an unknown export end the connection", async () => {
  await withServer(new MemorySource(image()), async (socket, server) => {
    const abort = await TestClient.connect(socket);
    await abort.greet();
    assert.deepEqual((await abort.option(Option.Abort)).map((r) => r.type), [OptionReply.Ack]);
    assert.ok(await abort.closedByServer());
    abort.close();

    const flags = await TestClient.connect(socket);
    await flags.greet(0x80);
    assert.ok(await flags.closedByServer());
    flags.close();

    const magic = await TestClient.connect(socket);
    await magic.greet();
    await magic.stream.send(new Uint8Array(16).fill(0x41));
    assert.ok(await magic.closedByServer());
    magic.close();

    const huge = await TestClient.connect(socket);
    await huge.greet();
    await huge.sendOption(Option.Go, new Uint8Array(0), 1 << 30);
    assert.ok(await huge.closedByServer());
    huge.close();

    const name = await TestClient.connect(socket);
    await name.greet();
    await name.sendOption(Option.ExportName, new TextEncoder().encode("nope"));
    assert.ok(await name.closedByServer());
    name.close();

    // EXPORT_NAME of the default export works (the old way in), without the 124 zeros.
    const old = await TestClient.connect(socket);
    await old.greet(ClientFlag.FixedNewstyle | ClientFlag.NoZeroes);
    await old.sendOption(Option.ExportName);
    const reply = (await old.stream.readExact(10))!;
    assert.equal(new DataView(reply.buffer).getBigUint64(0), BigInt(SIZE));
    const r = await old.read(SIZE - 512, 512);
    assert.equal(r.error, 0);
    await old.disconnect();
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(server.connectionCount, 0);
  });
});

Deno.test("transmission, simple replies: data, zeros, EIO for a failed range only, bad requests answered", async () => {
  const img = image();
  const source = new MemorySource(img);
  source.bad = [[8 * 4096, 9 * 4096]];
  await withServer(source, async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.handshake();
      assert.equal(c.size, BigInt(SIZE));
      const all = await c.read(0, 8 * 4096);
      assert.equal(all.error, 0);
      assert.deepEqual(all.data, img.subarray(0, 8 * 4096));
      assert.equal((await c.read(7 * 4096, 8192)).error, NbdErrno.EIO, "touches the bad range");
      assert.equal((await c.read(9 * 4096, 4096)).error, 0, "the next range is fine");
      assert.equal((await c.read(SIZE - 100, 200)).error, NbdErrno.EINVAL);
      assert.equal((await c.read(0, 0)).error, 0);
      assert.equal((await c.write(0, new Uint8Array(4096))).error, NbdErrno.EPERM);
      // The refused write's payload was drained: the stream is still in step.
      assert.deepEqual((await c.read(4096, 4096)).data, img.subarray(4096, 8192));
      assert.equal((await c.answer(await c.send(Command.Flush, 0, 0))).error, NbdErrno.EINVAL);
      assert.equal((await c.answer(await c.send(77, 0, 512))).error, NbdErrno.EINVAL);
      assert.equal((await c.read(0, 512, CommandFlag.Df)).error, NbdErrno.EINVAL);
      assert.equal(
        (await c.answer(await c.send(Command.BlockStatus, 0, 512))).error,
        NbdErrno.EINVAL,
      );
      // A write longer than the largest payload is skipped, not buffered.
      const big = await c.send(Command.Write, 0, 33 << 20, { data: new Uint8Array(33 << 20) });
      assert.equal((await c.answer(big)).error, NbdErrno.EPERM);
      assert.equal((await c.read(0, 512)).error, 0);
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("transmission, structured replies: holes as OFFSET_HOLE, failed ranges as ERROR_OFFSET, DF, block status", async () => {
  const img = image();
  const source = new MemorySource(img);
  source.bad = [[8 * 4096, 9 * 4096]];
  await withServer(source, async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.handshake({ structured: true, allocation: true, name: "disk" });
      assert.ok(c.flags & TransmissionFlag.SendDf);
      const r = await c.read(0, 8 * 4096);
      assert.equal(r.error, 0);
      assert.deepEqual(r.data, img.subarray(0, 8 * 4096));
      const types = r.chunks.map((ch) => ch.type);
      assert.equal(
        types.filter((t) => t === ReplyType.OffsetHole).length,
        2,
        "grain 0 and grains 5-6",
      );
      assert.equal(r.chunks.at(-1)!.flags & 1, 1, "the last chunk ends the reply");
      // Don't fragment: one data chunk with the zeros in it.
      const df = await c.read(0, 8 * 4096, CommandFlag.Df);
      assert.deepEqual(df.chunks.map((ch) => ch.type), [ReplyType.OffsetData]);
      assert.deepEqual(df.data, img.subarray(0, 8 * 4096));
      // A failed range: data before and after it, an error chunk with its offset.
      const bad = await c.read(7 * 4096, 3 * 4096);
      assert.equal(bad.error, NbdErrno.EIO);
      const errChunk = bad.chunks.find((ch) => ch.type === ReplyType.ErrorOffset)!;
      const v = new DataView(errChunk.payload.buffer, errChunk.payload.byteOffset);
      const msgLen = v.getUint16(4);
      assert.equal(v.getBigUint64(6 + msgLen), BigInt(8 * 4096));
      assert.deepEqual(bad.data!.subarray(0, 4096), img.subarray(7 * 4096, 8 * 4096));
      assert.deepEqual(bad.data!.subarray(8192), img.subarray(9 * 4096, 10 * 4096));
      // An error with a message for a bad request.
      const beyond = await c.read(SIZE, 1);
      assert.equal(beyond.error, NbdErrno.EINVAL);
      assert.equal(beyond.chunks[0].type, ReplyType.Error);
      // Block status follows the zero grains.
      const bs = await c.blockStatus(0, 8 * 4096);
      assert.equal(bs.error, 0);
      assert.deepEqual(bs.descriptors, [
        { length: 4096, flags: STATE_HOLE | STATE_ZERO },
        { length: 4 * 4096, flags: 0 },
        { length: 2 * 4096, flags: STATE_HOLE | STATE_ZERO },
        { length: 4096, flags: 0 },
      ]);
      const one = await c.blockStatus(4096, 8192, CommandFlag.ReqOne);
      assert.deepEqual(one.descriptors, [{ length: 8192, flags: 0 }]);
      const tail = await c.blockStatus(SIZE - 4096, 4096);
      assert.deepEqual(tail.descriptors, [{ length: 4096, flags: STATE_HOLE | STATE_ZERO }]);
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("transmission: a writable source takes WRITE, FUA, FLUSH and TRIM", async () => {
  const source = new MemorySource(new Uint8Array(SIZE), { writable: true });
  await withServer(source, async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.handshake();
      assert.equal(c.flags & TransmissionFlag.ReadOnly, 0);
      const data = pseudoRandom(1000, 3);
      assert.equal((await c.write(777, data)).error, 0);
      assert.equal((await c.write(5000, data, CommandFlag.Fua)).error, 0);
      assert.equal(source.flushes, 0, "FUA is the source's business (it gets the flag)");
      assert.equal((await c.answer(await c.send(Command.Flush, 0, 0))).error, 0);
      assert.equal(source.flushes, 1);
      assert.equal((await c.answer(await c.send(Command.Trim, 0, 4096))).error, 0);
      assert.equal((await c.write(SIZE - 10, data)).error, NbdErrno.ENOSPC);
      assert.deepEqual((await c.read(777, 1000)).data, data);
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("transmission: a request without the magic ends that connection, not the server", async () => {
  const img = image();
  await withServer(new MemorySource(img), async (socket, _server, log) => {
    const bad = await TestClient.connect(socket);
    await bad.handshake();
    await bad.stream.send(new Uint8Array(28).fill(0xee));
    assert.ok(await bad.closedByServer());
    bad.close();
    const good = await TestClient.connect(socket);
    await good.handshake();
    assert.deepEqual((await good.read(4096, 4096)).data, img.subarray(4096, 8192));
    await good.disconnect();
    assert.ok(log.some((l) => l.includes("without the request magic")));
  });
});

Deno.test("many clients at once read the same export concurrently", async () => {
  const img = image();
  await withServer(new MemorySource(img), async (socket, server) => {
    const clients = await Promise.all(Array.from({ length: 12 }, () => TestClient.connect(socket)));
    try {
      await Promise.all(clients.map((c, i) => c.handshake({ structured: i % 2 === 1 })));
      assert.equal(server.connectionCount, 12);
      await Promise.all(clients.map(async (c, i) => {
        for (let off = (i * 4096) % SIZE, n = 0; n < 16; n++, off = (off + 12288) % (SIZE - 8192)) {
          const r = await c.read(off, 8192);
          assert.equal(r.error, 0);
          assert.deepEqual(r.data, img.subarray(off, off + 8192));
        }
      }));
      await Promise.all(clients.map((c) => c.disconnect()));
    } finally {
      for (const c of clients) c.close();
    }
  });
});

Deno.test("pipelined requests are all answered, each with its own handle", async () => {
  const img = image();
  await withServer(new MemorySource(img), async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.handshake({ structured: true });
      const handles: bigint[] = [];
      for (let i = 0; i < 40; i++) handles.push(await c.send(Command.Read, i * 4096, 4096));
      // The memory source answers in order; each reply names its handle.
      for (let i = 0; i < 40; i++) {
        const r = await c.answer(handles[i], 4096, BigInt(i * 4096));
        assert.deepEqual(r.data, img.subarray(i * 4096, (i + 1) * 4096));
      }
      await c.disconnect();
    } finally {
      c.close();
    }
  });
});

Deno.test("NbdServer.close() answers the requests in flight, closes every connection, removes the socket", async () => {
  const img = image();
  const source = new MemorySource(img);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let entered!: () => void;
  const inRead = new Promise<void>((r) => (entered = r));
  source.gate = () => {
    entered();
    return held;
  };
  const dir = await Deno.makeTempDir({ prefix: "blksnap-nbd-test-" });
  const socket = join(dir, "nbd.sock");
  const server = await NbdServer.listen({ socket }, {
    exports: [{ name: "disk", description: "", source }],
  });
  const c = await TestClient.connect(socket);
  const idle = await TestClient.connect(socket); // in the handshake when the server stops
  try {
    await idle.greet();
    await c.handshake();
    const h = await c.send(Command.Read, 4096, 4096);
    await inRead;
    const closing = server.close();
    await new Promise((r) => setTimeout(r, 20));
    release();
    const r = await c.answer(h, 4096);
    assert.equal(r.error, 0);
    assert.deepEqual(r.data, img.subarray(4096, 8192));
    await closing;
    assert.ok(await c.closedByServer());
    assert.ok(await idle.closedByServer());
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
    await assert.rejects(TestClient.connect(socket));
  } finally {
    c.close();
    idle.close();
    await server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NbdServer.listen() replaces a stale socket file and refuses one in use or a non-socket", async () => {
  const dir = await Deno.makeTempDir({ prefix: "blksnap-nbd-test-" });
  const socket = join(dir, "nbd.sock");
  const exports = [{ name: "d", description: "", source: new MemorySource(image()) }];
  try {
    // A socket file left by a killed server: nobody listens on it.
    const stale = Deno.listen({ transport: "unix", path: socket });
    stale.close();
    await Deno.writeTextFile(join(dir, "x"), "");
    const a = await NbdServer.listen({ socket }, { exports });
    assert.equal((await Deno.lstat(socket)).mode! & 0o777, 0o600);
    await assert.rejects(NbdServer.listen({ socket }, { exports }), Deno.errors.AddrInUse);
    await a.close();
    await assert.rejects(
      NbdServer.listen({ socket: join(dir, "x") }, { exports }),
      Deno.errors.AlreadyExists,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("NbdServer serves on a loopback TCP port", async () => {
  const img = image();
  const server = await NbdServer.listen({ port: 0 }, {
    exports: [{ name: "d", description: "", source: new MemorySource(img) }],
  });
  try {
    assert.match(server.address, /^127\.0\.0\.1:\d+$/);
    const c = await TestClient.connect(Number(server.address.split(":")[1]));
    await c.handshake();
    assert.deepEqual((await c.read(0, SIZE)).data, img);
    await c.disconnect();
  } finally {
    await server.close();
  }
});

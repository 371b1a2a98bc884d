// `blksnap serve` against the NBD clients Debian ships (libnbd-bin's nbdinfo
// and nbdcopy, qemu-utils' qemu-img and qemu-io), on the host: no kernel
// module needed. The shared cases (tests/host/_nbd_cases.ts) run for a local
// plain and a local encrypted repository; tests/s3/nbd_test.ts runs them on
// S3. The protocol's bad cases, TCP and usage errors run here once.

import assert from "node:assert/strict";
import { join } from "node:path";
import { NbdErrno, OptionReply } from "../../lib/nbd/protocol.ts";
import { TestClient } from "../unit/nbd/_client.ts";
import { nbdCases, serving, SIZE, socketPath, uri } from "./_nbd_cases.ts";
import { blksnap, runOk, ServeProcess } from "./_host.ts";

const setup = nbdCases({
  label: "local, plain",
  encrypted: false,
  location: (dir) => Promise.resolve(join(dir, "repo")),
});
nbdCases({
  label: "local, encrypted",
  encrypted: true,
  location: (dir) => Promise.resolve(join(dir, "repo")),
});

Deno.test("[local, plain] bad requests get NBD errors; the server keeps serving everyone", async () => {
  const f = await setup();
  await serving(f, [], async (socket) => {
    const c = await TestClient.connect(socket);
    try {
      await c.greet();
      assert.equal((await c.option(1234)).at(-1)!.type, OptionReply.ErrUnsup);
      assert.equal((await c.option(7, new Uint8Array(2))).at(-1)!.type, OptionReply.ErrInvalid);
      assert.equal(
        (await c.option(7, TestClient.infoData("no-such-export"))).at(-1)!.type,
        OptionReply.ErrUnknown,
      );
      assert.equal((await c.option(7, TestClient.infoData(f.id))).at(-1)!.type, OptionReply.Ack);
      assert.equal((await c.read(0, 512)).error, 0);
      await c.disconnect();
    } finally {
      c.close();
    }
    const d = await TestClient.connect(socket);
    try {
      await d.handshake();
      assert.equal((await d.read(SIZE - 1, 2)).error, NbdErrno.EINVAL);
      assert.equal((await d.write(0, new Uint8Array(512))).error, NbdErrno.EPERM);
      assert.equal((await d.answer(await d.send(99, 0, 0))).error, NbdErrno.EINVAL);
      assert.equal((await d.read(0, 4096)).error, 0);
      await d.stream.send(new Uint8Array(28)); // no request magic
      assert.ok(await d.closedByServer());
    } finally {
      d.close();
    }
    assert.equal((await runOk("nbdinfo", ["--size", uri(socket)])).stdout.trim(), String(SIZE));
  });
});

Deno.test("[local, plain] blksnap serve on a loopback TCP port", async () => {
  const f = await setup();
  const probe = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (probe.addr as Deno.NetAddr).port;
  probe.close();
  const server = await ServeProcess.start(["-r", f.repo, f.id, "--port", String(port)], { port });
  try {
    const size = await runOk("nbdinfo", ["--size", `nbd://127.0.0.1:${port}`]);
    assert.equal(size.stdout.trim(), String(SIZE));
  } finally {
    assert.equal((await server.stop()).code, 0);
  }
});

Deno.test("[local, plain] blksnap serve: usage errors and a missing backup are refused before listening", async () => {
  const f = await setup();
  const none = await blksnap(["serve", "-r", f.repo, f.id]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /exactly one of --socket <path> or --port <n>/);
  const both = await blksnap([
    "serve",
    "-r",
    f.repo,
    f.id,
    "--socket",
    "/tmp/x.sock",
    "--port",
    "1",
  ]);
  assert.equal(both.code, 2);
  const socket = socketPath(f);
  const missing = await blksnap([
    "serve",
    "-r",
    f.repo,
    "20200101T000000000Z-00000000",
    "--socket",
    socket,
  ]);
  assert.equal(missing.code, 1);
  assert.match(missing.stderr, /NOT_FOUND: Backup 20200101T000000000Z-00000000 not found/);
  await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
});

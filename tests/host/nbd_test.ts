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
import { blksnap, ensureTools, runOk, ServeProcess } from "./_host.ts";

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

Deno.test("[local, plain] the documented QEMU flows: -drive file=nbd+unix over an overlay, a qcow2 over the export", async () => {
  await ensureTools(["qemu-system-x86_64"], ["qemu-system-x86"]);
  const f = await setup();
  // A machine that never starts (-S): its monitor writes through the guest's
  // virtio disk (QEMU's block layer, its NBD client) and reads back.
  const monitor = async (drive: string, commands: string[]): Promise<string> => {
    const child = new Deno.Command("qemu-system-x86_64", {
      args: [
        "-accel",
        "tcg",
        "-display",
        "none",
        "-nodefaults",
        "-S",
        "-monitor",
        "stdio",
        "-drive",
        drive,
      ],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode([...commands, "quit", ""].join("\n")));
    await w.close();
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
    assert.ok(out.success, text);
    return text;
  };
  const overlay = join(f.dir, "vm1.overlay");
  await serving(f, ["--overlay", overlay], async (socket) => {
    const out = await monitor(`file=nbd+unix:///?socket=${socket},format=raw,if=virtio,id=disk0`, [
      'qemu-io disk0 "write -P 0x77 4096 4096"',
      'qemu-io disk0 "read -P 0x77 4096 4096"',
    ]);
    assert.match(out, /wrote 4096\/4096 bytes at offset 4096/);
    assert.match(out, /read 4096\/4096 bytes at offset 4096/);
    assert.doesNotMatch(out, /Pattern verification failed/);
    await runOk("qemu-io", ["-f", "raw", "-r", "-c", "read -P 0x77 4096 4096", uri(socket)]);
  });
  await serving(f, [], async (socket) => {
    const qcow2 = join(f.dir, "vm1.qcow2");
    await runOk("qemu-img", ["create", "-f", "qcow2", "-b", uri(socket), "-F", "raw", qcow2]);
    const out = await monitor(`file=${qcow2},if=virtio,id=disk0`, [
      'qemu-io disk0 "write -P 0x66 0 4096"',
    ]);
    assert.match(out, /wrote 4096\/4096 bytes at offset 0/);
    await runOk("qemu-io", ["-c", "read -P 0x66 0 4096", qcow2]);
    // The export itself is untouched.
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", uri(socket), f.restored]);
    await Deno.remove(qcow2);
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

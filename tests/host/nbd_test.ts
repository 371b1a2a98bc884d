// `blksnap serve` against the NBD clients Debian ships (libnbd-bin's nbdinfo
// and nbdcopy, qemu-utils' qemu-img and qemu-io), on the host: no kernel
// module needed. The repository is made with the CLI as an operator would.

import assert from "node:assert/strict";
import { join } from "node:path";
import { Repository } from "../../lib/backup/mod.ts";
import { BackupPointSource } from "../../lib/nbd/backup_source.ts";
import { NbdErrno, OptionReply } from "../../lib/nbd/protocol.ts";
import { TestClient } from "../unit/nbd/_client.ts";
import { blksnap, ensureTools, fileSha256, run, runOk, ServeProcess, treeHashes } from "./_host.ts";

const MiB = 1024 * 1024;
const CHUNK = MiB;
/** Chunks that are all zeros in the image. */
const ZERO_CHUNKS = [0, 5, 6, 13];
const SIZE = 24 * MiB + 1536; // a short last chunk

interface Fixture {
  dir: string;
  repo: string;
  id: string;
  image: string;
  /** `blksnap restore` of the backup: what every copy must equal. */
  restored: string;
  restoredSha: string;
}

function fillImage(): Uint8Array {
  const img = new Uint8Array(SIZE);
  let x = 12345;
  const text = new TextEncoder().encode("Dec  1 03:11:35 host kernel: nbd0: detected capacity\n");
  for (let c = 0; c * CHUNK < SIZE; c++) {
    if (ZERO_CHUNKS.includes(c)) continue;
    const end = Math.min(SIZE, (c + 1) * CHUNK);
    for (let i = c * CHUNK; i < end; i++) {
      if (c % 2 === 0) img[i] = text[i % text.length] ^ (i % 4096 === 0 ? c : 0);
      else {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        img[i] = x & 0xff;
      }
    }
  }
  return img;
}

let fixture: Promise<Fixture> | null = null;
function setup(): Promise<Fixture> {
  fixture ??= (async () => {
    await ensureTools(["nbdinfo", "nbdcopy", "qemu-img", "qemu-io"], ["libnbd-bin", "qemu-utils"]);
    const dir = await Deno.makeTempDir({ prefix: "blksnap-nbd-host-" });
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const image = join(dir, "disk.img");
    await Deno.writeFile(image, fillImage());
    const repo = join(dir, "repo");
    const init = await blksnap(["init", "-r", repo, "--chunk-size", "1M", "--no-encryption"]);
    assert.equal(init.code, 0, init.stderr);
    const b = await blksnap(["--json", "backup", "-r", repo, "--image", image]);
    assert.equal(b.code, 0, b.stderr);
    const id = JSON.parse(b.stdout).backups[0].manifest.id;
    assert.match(id, /^\d{8}T\d{9}Z-[0-9a-f]{8}$/, b.stdout);
    const restored = join(dir, "restored.img");
    const r = await blksnap(["restore", "-r", repo, id, restored]);
    assert.equal(r.code, 0, r.stderr);
    return { dir, repo, id, image, restored, restoredSha: await fileSha256(restored) };
  })();
  return fixture;
}

let sockets = 0;
function socketPath(f: Fixture): string {
  return join(f.dir, `s${sockets++}.sock`);
}
const uri = (socket: string): string => `nbd+unix:///?socket=${socket}`;

async function serving<T>(
  f: Fixture,
  extra: string[],
  fn: (socket: string, server: ServeProcess) => Promise<T>,
  repo = f.repo,
): Promise<T> {
  const socket = socketPath(f);
  const server = await ServeProcess.start(["-r", repo, f.id, "--socket", socket, ...extra], {
    socket,
  });
  try {
    return await fn(socket, server);
  } finally {
    const st = await server.stop();
    assert.equal(st.code, 0, server.log);
  }
}

Deno.test("nbdinfo: size, read-only, base:allocation, the backup id as export name", async () => {
  const f = await setup();
  await serving(f, [], async (socket) => {
    const info = JSON.parse((await runOk("nbdinfo", ["--json", uri(socket)])).stdout);
    const exp = info.exports[0];
    assert.equal(exp["export-size"], SIZE);
    assert.equal(exp.is_read_only, true);
    assert.ok(exp.contexts.includes("base:allocation"));
    assert.equal(exp["export-name"], f.id, "the canonical name (NBD_INFO_NAME)");
    const list = JSON.parse((await runOk("nbdinfo", ["--list", "--json", uri(socket)])).stdout);
    assert.deepEqual(list.exports.map((e: { "export-name": string }) => e["export-name"]), [f.id]);
    assert.equal(
      (await runOk("nbdinfo", ["--size", `nbd+unix:///${f.id}?socket=${socket}`])).stdout.trim(),
      String(SIZE),
    );
  });
});

Deno.test("nbdcopy and qemu-img convert copy the backup point byte-equal to blksnap restore", async () => {
  const f = await setup();
  await serving(f, [], async (socket) => {
    const copy = join(f.dir, "nbdcopy.img");
    await runOk("nbdcopy", [uri(socket), copy]);
    assert.equal(await fileSha256(copy), f.restoredSha);
    const conv = join(f.dir, "qemu.img");
    await runOk("qemu-img", ["convert", "-f", "raw", "-O", "raw", uri(socket), conv]);
    assert.equal(await fileSha256(conv), f.restoredSha);
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", uri(socket), f.image]);
    assert.equal(await fileSha256(f.image), f.restoredSha);
    await Deno.remove(copy);
    await Deno.remove(conv);
  });
});

Deno.test("block status (nbdinfo --map, qemu-img map) matches the index's zero chunks", async () => {
  const f = await setup();
  // The expectation comes from the index itself.
  const repo = await Repository.open(f.repo);
  const source = await BackupPointSource.open(repo, f.id);
  const fromIndex: number[] = [];
  for (let c = 0; c * CHUNK < SIZE; c++) if (source.isZeroChunk(c)) fromIndex.push(c);
  assert.deepEqual(fromIndex, ZERO_CHUNKS);
  const expected: Array<{ offset: number; length: number; zero: boolean }> = [];
  for (let c = 0; c * CHUNK < SIZE; c++) {
    const zero = fromIndex.includes(c);
    const length = Math.min(CHUNK, SIZE - c * CHUNK);
    const last = expected.at(-1);
    if (last && last.zero === zero) last.length += length;
    else expected.push({ offset: c * CHUNK, length, zero });
  }
  await serving(f, [], async (socket) => {
    const map = JSON.parse((await runOk("nbdinfo", ["--map", "--json", uri(socket)])).stdout);
    assert.deepEqual(
      map.map((e: { offset: number; length: number; type: number }) => ({
        offset: e.offset,
        length: e.length,
        zero: e.type === 3,
      })),
      expected,
    );
    const qmap = JSON.parse(
      (await runOk("qemu-img", ["map", "--output=json", "-f", "raw", uri(socket)])).stdout,
    );
    assert.deepEqual(
      qmap.map((e: { start: number; length: number; zero: boolean; data: boolean }) => ({
        offset: e.start,
        length: e.length,
        zero: e.zero && !e.data,
      })),
      expected,
    );
  });
});

Deno.test("overlay: writes are visible through NBD, survive a restart, never reach the repository", async () => {
  const f = await setup();
  const before = await treeHashes(f.repo);
  const overlay = join(f.dir, "vm.overlay");
  const writes = [
    "write -P 0xab 1000 5000",
    "write -P 0xcd 5242880 8192",
    "write -P 0x11 25164800 1536",
  ];
  await serving(f, ["--overlay", overlay], async (socket) => {
    const info = JSON.parse((await runOk("nbdinfo", ["--json", uri(socket)])).stdout);
    assert.equal(info.exports[0].is_read_only, false);
    assert.equal(info.exports[0].can_flush, true);
    await runOk("qemu-io", [
      "-f",
      "raw",
      ...writes.flatMap((w) => ["-c", w]),
      "-c",
      "flush",
      uri(socket),
    ]);
    await runOk("qemu-io", [
      "-f",
      "raw",
      "-c",
      "read -P 0xab 1000 5000",
      "-c",
      "read -P 0xcd 5242880 8192",
      uri(socket),
    ]);
    // Chunk 5 was a hole; the written part of it now reports as data.
    const map = JSON.parse((await runOk("nbdinfo", ["--map", "--json", uri(socket)])).stdout);
    const at5 = map.find((e: { offset: number; length: number }) =>
      e.offset <= 5242880 && e.offset + e.length > 5242880
    );
    assert.equal(at5.type, 0);
    const after = map.find((e: { offset: number }) => e.offset === 5242880 + 8192);
    assert.equal(after.type, 3, "the rest of chunk 5 is still a hole");
  });
  // Served again over the same overlay: the writes are still there.
  await serving(f, ["--overlay", overlay], async (socket) => {
    const copy = join(f.dir, "overlay-copy.img");
    await runOk("nbdcopy", [uri(socket), copy]);
    const expected = await Deno.readFile(f.restored);
    expected.fill(0xab, 1000, 6000);
    expected.fill(0xcd, 5242880, 5242880 + 8192);
    expected.fill(0x11, 25164800, 25164800 + 1536);
    assert.deepEqual(await Deno.readFile(copy), expected);
    await Deno.remove(copy);
  });
  // Without the overlay: the backup point as it was.
  await serving(f, [], async (socket) => {
    await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", uri(socket), f.restored]);
  });
  assert.deepEqual(await treeHashes(f.repo), before, "the repository is unchanged");
  // A read-only export refuses writes.
  await serving(f, [], async (socket) => {
    const w = await run("qemu-io", ["-f", "raw", "-c", "write 0 512", uri(socket)]);
    assert.notEqual(w.code, 0);
  });
});

Deno.test("a damaged chunk is EIO for its range only, and the server names its digest", async () => {
  const f = await setup();
  const damaged = join(f.dir, "damaged-repo");
  await runOk("cp", ["-a", f.repo, damaged]);
  const repo = await Repository.open(damaged);
  const source = await BackupPointSource.open(repo, f.id);
  const bad = 9;
  const hex = source.digestOf(bad);
  const path = repo.chunkPath(hex);
  const bytes = await Deno.readFile(path);
  bytes[40] ^= 0x55;
  await Deno.writeFile(path, bytes);
  await serving(f, [], async (socket, server) => {
    const off = bad * CHUNK;
    const r = await run("qemu-io", [
      "-f",
      "raw",
      "-r",
      "-c",
      `read ${off + 4096} 4096`,
      uri(socket),
    ]);
    assert.match(r.stdout + r.stderr, /Input\/output error/);
    for (const ok of [off - 4096, off + CHUNK, 0, 20 * CHUNK]) {
      await runOk("qemu-io", ["-f", "raw", "-r", "-c", `read ${ok} 4096`, uri(socket)]);
    }
    // Our client sees EIO for exactly that chunk's bytes, data around it.
    const c = await TestClient.connect(socket);
    try {
      await c.handshake({ structured: true });
      const a = await c.read(off - 4096, CHUNK + 8192);
      assert.equal(a.error, NbdErrno.EIO);
      const expected = await Deno.readFile(f.restored);
      assert.deepEqual(a.data!.subarray(0, 4096), expected.subarray(off - 4096, off));
      assert.deepEqual(
        a.data!.subarray(4096 + CHUNK),
        expected.subarray(off + CHUNK, off + CHUNK + 4096),
      );
      await c.disconnect();
    } finally {
      c.close();
    }
    const copy = await run("nbdcopy", [uri(socket), join(f.dir, "damaged-copy.img")]);
    assert.notEqual(copy.code, 0, "nbdcopy must not succeed over a damaged chunk");
    await new Promise((r) => setTimeout(r, 100));
    assert.match(server.log, new RegExp(`chunk ${hex} \\(bytes ${bad * CHUNK}-`));
  }, damaged);
});

Deno.test("concurrent clients: four nbdcopy at once, each byte-equal", async () => {
  const f = await setup();
  await serving(f, ["--cache", "8M"], async (socket) => {
    const outs = [0, 1, 2, 3].map((i) => join(f.dir, `conc${i}.img`));
    const rs = await Promise.all(
      outs.map((o) => run("nbdcopy", ["--connections=2", uri(socket), o])),
    );
    for (const r of rs) assert.equal(r.code, 0, r.stderr);
    for (const o of outs) {
      assert.equal(await fileSha256(o), f.restoredSha);
      await Deno.remove(o);
    }
  });
});

Deno.test("SIGTERM during reads: the server stops at once, removes its socket, releases the overlay", async () => {
  const f = await setup();
  const overlay = join(f.dir, "term.overlay");
  const socket = socketPath(f);
  const server = await ServeProcess.start(
    ["-r", f.repo, f.id, "--socket", socket, "--overlay", overlay],
    { socket },
  );
  // Slow, sequential 4 KiB reads: still copying when the signal comes.
  const copy = new Deno.Command("nbdcopy", {
    args: ["--synchronous", "--request-size=4096", "--connections=1", uri(socket), "null:"],
    stdout: "null",
    stderr: "piped",
  }).spawn();
  await new Promise((r) => setTimeout(r, 700));
  const st = await server.stop("SIGTERM");
  const c = await copy.output();
  assert.equal(st.code, 0, server.log);
  assert.ok(st.ms < 10_000, `stopped in ${st.ms} ms`);
  assert.notEqual(c.code, 0, "the copy was cut short");
  await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
  await assert.rejects(Deno.lstat(`${overlay}.lock`), Deno.errors.NotFound);
  assert.match(server.log, /stopping/);
  // SIGINT works the same.
  const again = await ServeProcess.start(["-r", f.repo, f.id, "--socket", socket], { socket });
  assert.equal((await again.stop("SIGINT")).code, 0);
  await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
});

Deno.test("bad requests get NBD errors; the server keeps serving everyone", async () => {
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

Deno.test("blksnap serve on a loopback TCP port", async () => {
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

Deno.test("blksnap serve: usage errors and a missing backup are refused before listening", async () => {
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

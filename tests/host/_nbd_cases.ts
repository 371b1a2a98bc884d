/**
 * The NBD cases every kind of repository must pass (local or S3, plain or
 * encrypted): `blksnap serve` of a backup made with the CLI, against the NBD
 * clients Debian ships (libnbd-bin's nbdinfo and nbdcopy, qemu-utils'
 * qemu-img and qemu-io). tests/host/nbd_test.ts registers them for local
 * repositories, tests/s3/nbd_test.ts for S3 ones.
 *
 * @module
 */

import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { join } from "node:path";
import { Repository } from "../../lib/backup/mod.ts";
import { chunkName } from "../../lib/backup/storage/backend.ts";
import { BackupPointSource } from "../../lib/nbd/backup_source.ts";
import { NbdErrno } from "../../lib/nbd/protocol.ts";
import { TestClient } from "../unit/nbd/_client.ts";
import { blksnap, ensureTools, fileSha256, run, runOk, ServeProcess } from "./_host.ts";

const MiB = 1024 * 1024;
/** Chunk size of the test repositories. */
export const CHUNK = MiB;
/** Chunks that are all zeros in the image. */
export const ZERO_CHUNKS = [0, 5, 6, 13];
/** Image size: 24 MiB and a short last chunk. */
export const SIZE = 24 * MiB + 1536;
/** Passphrase of the encrypted test repositories. */
export const PASSPHRASE = "correct horse battery staple";

/** A kind of repository the cases run against. */
export interface RepoKind {
  /** Shown in test names: `local, plain`, `s3, encrypted`... */
  label: string;
  /** Format 2, with {@linkcode PASSPHRASE}. */
  encrypted: boolean;
  /** Skip the cases (no S3 server configured). */
  ignore?: boolean;
  /** A new, empty repository location: a path under `dir`, or an `s3://` URL. */
  location(dir: string): Promise<string>;
}

/** What the cases of one kind share: one backup, and its restore as the reference. */
export interface Fixture {
  dir: string;
  repo: string;
  id: string;
  image: string;
  /** `blksnap restore` of the backup: what every copy must equal. */
  restored: string;
  restoredSha: string;
  /** Environment of every `blksnap` run (passphrase). */
  env: Record<string, string>;
  open(): Promise<Repository>;
}

/** The test image: zero chunks at {@linkcode ZERO_CHUNKS}, text and random chunks between. */
export function fillImage(): Uint8Array {
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

/** The NBD URI of a Unix socket. */
export const uri = (socket: string): string => `nbd+unix:///?socket=${socket}`;

/** The repository's stored objects (every prefix the format uses), by name, with their SHA-256. */
async function contents(repo: Repository): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for (const prefix of ["", "chunks/", "backups/", "runs/"]) {
    for await (const o of repo.backend.list(prefix)) {
      if (out.has(o.name) || (await repo.backend.stat(o.name).catch(() => null)) === null) continue;
      const data = await repo.backend.get(o.name, 1 << 30).catch(() => null);
      if (data !== null) out.set(o.name, createHash("sha256").update(data).digest("hex"));
    }
  }
  assert.ok([...out.keys()].some((n) => n.startsWith("chunks/")), "chunks listed");
  return out;
}

/**
 * A fixture for `kind`, made once per kind: the image backed up with the CLI
 * (`init`, `backup --image`) and restored with it.
 */
export function fixtureOf(kind: RepoKind): () => Promise<Fixture> {
  let made: Promise<Fixture> | null = null;
  return () =>
    made ??= (async () => {
      await ensureTools(["nbdinfo", "nbdcopy", "qemu-img", "qemu-io"], [
        "libnbd-bin",
        "qemu-utils",
      ]);
      const dir = await Deno.makeTempDir({ prefix: "blksnap-nbd-host-" });
      const repo = await kind.location(dir);
      globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
      const env: Record<string, string> = kind.encrypted ? { BLKSNAP_PASSWORD: PASSPHRASE } : {};
      const image = join(dir, "disk.img");
      await Deno.writeFile(image, fillImage());
      const init = await blksnap([
        "init",
        "-r",
        repo,
        "--chunk-size",
        "1M",
        ...(kind.encrypted ? [] : ["--no-encryption"]),
      ], env);
      assert.equal(init.code, 0, init.stderr);
      const b = await blksnap(["--json", "backup", "-r", repo, "--image", image], env);
      assert.equal(b.code, 0, b.stderr);
      const id = JSON.parse(b.stdout).backups[0].manifest.id;
      assert.match(id, /^\d{8}T\d{9}Z-[0-9a-f]{8}$/, b.stdout);
      const restored = join(dir, "restored.img");
      const r = await blksnap(["restore", "-r", repo, id, restored], env);
      assert.equal(r.code, 0, r.stderr);
      const open = () =>
        Repository.open(repo, { passphrase: kind.encrypted ? PASSPHRASE : undefined });
      const opened = await open();
      assert.equal(opened.encrypted, kind.encrypted);
      return { dir, repo, id, image, restored, restoredSha: await fileSha256(restored), env, open };
    })();
}

let sockets = 0;
/** A fresh socket path in the fixture's directory. */
export function socketPath(f: Fixture): string {
  return join(f.dir, `s${sockets++}.sock`);
}

/** Run `fn` with `blksnap serve` of the fixture's backup on a socket; the server must stop cleanly. */
export async function serving<T>(
  f: Fixture,
  extra: string[],
  fn: (socket: string, server: ServeProcess) => Promise<T>,
): Promise<T> {
  const socket = socketPath(f);
  const server = await ServeProcess.start(["-r", f.repo, f.id, "--socket", socket, ...extra], {
    socket,
  }, f.env);
  try {
    return await fn(socket, server);
  } finally {
    const st = await server.stop();
    assert.equal(st.code, 0, server.log);
  }
}

/** The index's zero chunks as (offset, length, zero) runs of the device. */
async function expectedMap(
  f: Fixture,
): Promise<Array<{ offset: number; length: number; zero: boolean }>> {
  const source = await BackupPointSource.open(await f.open(), f.id);
  const zero: number[] = [];
  for (let c = 0; c * CHUNK < SIZE; c++) if (source.isZeroChunk(c)) zero.push(c);
  assert.deepEqual(zero, ZERO_CHUNKS);
  const out: Array<{ offset: number; length: number; zero: boolean }> = [];
  for (let c = 0; c * CHUNK < SIZE; c++) {
    const z = zero.includes(c);
    const length = Math.min(CHUNK, SIZE - c * CHUNK);
    const last = out.at(-1);
    if (last && last.zero === z) last.length += length;
    else out.push({ offset: c * CHUNK, length, zero: z });
  }
  return out;
}

/** Register the cases for `kind`. */
export function nbdCases(kind: RepoKind): () => Promise<Fixture> {
  const setup = fixtureOf(kind);
  const test = (name: string, fn: () => Promise<void>): void =>
    Deno.test({ name: `[${kind.label}] ${name}`, ignore: kind.ignore, fn });

  test("nbdinfo size, nbdcopy and qemu-img copies equal to restore, block status equal to the index", async () => {
    const f = await setup();
    const expected = await expectedMap(f);
    await serving(f, [], async (socket) => {
      const info = JSON.parse((await runOk("nbdinfo", ["--json", uri(socket)])).stdout);
      const exp = info.exports[0];
      assert.equal(exp["export-size"], SIZE);
      assert.equal(exp.is_read_only, true);
      assert.ok(exp.contexts.includes("base:allocation"));
      assert.equal(exp["export-name"], f.id, "the canonical name (NBD_INFO_NAME)");
      const copy = join(f.dir, "nbdcopy.img");
      await runOk("nbdcopy", [uri(socket), copy]);
      assert.equal(await fileSha256(copy), f.restoredSha);
      await Deno.remove(copy);
      const conv = join(f.dir, "qemu.img");
      await runOk("qemu-img", ["convert", "-f", "raw", "-O", "raw", uri(socket), conv]);
      assert.equal(await fileSha256(conv), f.restoredSha);
      await Deno.remove(conv);
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

  test("overlay: writes visible through NBD, kept across a restart, never in the repository", async () => {
    const f = await setup();
    const before = await contents(await f.open());
    const overlay = join(f.dir, `vm-${crypto.randomUUID().slice(0, 6)}.overlay`);
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
      // Chunk 5 was a hole; its written part now reports as data, the rest still a hole.
      const map = JSON.parse((await runOk("nbdinfo", ["--map", "--json", uri(socket)])).stdout);
      const at5 = map.find((e: { offset: number; length: number }) =>
        e.offset <= 5242880 && e.offset + e.length > 5242880
      );
      assert.equal(at5.type, 0);
      const after = map.find((e: { offset: number }) => e.offset === 5242880 + 8192);
      assert.equal(after.type, 3);
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
    // Without the overlay: the backup point as it was, and a read-only export.
    await serving(f, [], async (socket) => {
      await runOk("qemu-img", ["compare", "-f", "raw", "-F", "raw", uri(socket), f.restored]);
      const w = await run("qemu-io", ["-f", "raw", "-c", "write 0 512", uri(socket)]);
      assert.notEqual(w.code, 0);
    });
    assert.deepEqual(await contents(await f.open()), before, "the repository is unchanged");
  });

  test("a damaged chunk is EIO for its range only, and the server names its digest", async () => {
    const f = await setup();
    const repo = await f.open();
    const source = await BackupPointSource.open(repo, f.id);
    const bad = 9;
    const hex = source.digestOf(bad);
    const original = (await repo.backend.get(chunkName(hex), 1 << 30))!;
    const damaged = original.slice();
    damaged[40] ^= 0x55;
    await repo.backend.put(chunkName(hex), damaged);
    try {
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
      });
    } finally {
      await repo.backend.put(chunkName(hex), original);
      await Deno.remove(join(f.dir, "damaged-copy.img")).catch(() => {});
    }
  });

  test("concurrent clients: four nbdcopy at once, each byte-equal", async () => {
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

  test("SIGTERM during reads: the server stops at once, removes its socket, releases the overlay", async () => {
    const f = await setup();
    const overlay = join(f.dir, `term-${crypto.randomUUID().slice(0, 6)}.overlay`);
    const socket = socketPath(f);
    const server = await ServeProcess.start(
      ["-r", f.repo, f.id, "--socket", socket, "--overlay", overlay],
      { socket },
      f.env,
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
    const again = await ServeProcess.start(
      ["-r", f.repo, f.id, "--socket", socket],
      { socket },
      f.env,
    );
    assert.equal((await again.stop("SIGINT")).code, 0);
    await assert.rejects(Deno.lstat(socket), Deno.errors.NotFound);
  });

  return setup;
}

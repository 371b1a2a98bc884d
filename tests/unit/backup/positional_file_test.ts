// Positional I/O through libc (PositionalFile) and the sources and targets
// built on it: the same bytes with and without O_DIRECT, aligned or not,
// several requests in flight; errors named by errno; Deno's file API when
// FFI is not permitted.
import assert from "node:assert/strict";
import { join } from "node:path";
import { FileSource } from "../../../lib/backup/mod.ts";
import { PositionalFile } from "../../../lib/backup/positional_file.ts";
import { TargetWriter } from "../../../lib/backup/target_writer.ts";
import { pseudoRandom, tempDir } from "./_helpers.ts";

const KiB = 1024;

Deno.test("PositionalFile reads the same bytes direct and buffered, aligned or not, many at once", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "data");
  const data = pseudoRandom(1024 * KiB + 333, 3);
  await Deno.writeFile(path, data);
  for (const direct of [false, true]) {
    using f = PositionalFile.open(path, { direct })!;
    assert.ok(f, "FFI is permitted in the tests");
    assert.equal(f.size(), BigInt(data.length));
    // direct is false where the file system refuses O_DIRECT (tmpfs): still correct bytes
    const reads = [0, 1, 7, 64, 128, 255].map(async (k) => {
      const buf = f.allocate(4 * KiB * (k % 5 + 1));
      const n = await f.read(BigInt(k * 4 * KiB), buf);
      assert.deepEqual(buf.subarray(0, n), data.subarray(k * 4 * KiB, k * 4 * KiB + n));
    });
    await Promise.all(reads);
    const odd = new Uint8Array(5000).subarray(3); // misaligned, odd length
    assert.equal(await f.read(4097n, odd), odd.length);
    assert.deepEqual(odd, data.subarray(4097, 4097 + odd.length));
    const tail = f.allocate(8 * KiB);
    assert.equal(await f.read(BigInt(1024 * KiB), tail), 333, "short only at the end");
    assert.deepEqual(tail.subarray(0, 333), data.subarray(1024 * KiB));
  }
});

Deno.test("PositionalFile names errors by errno; TargetWriter writes at positions and syncs", async () => {
  await using dir = await tempDir();
  assert.throws(
    () => PositionalFile.open(join(dir.path, "missing")),
    (e: unknown) => e instanceof Error && /ENOENT/.test(e.message),
  );
  const path = join(dir.path, "target");
  await Deno.writeFile(path, new Uint8Array(256 * KiB).fill(0xee));
  for (const direct of [false, true]) {
    using w = await TargetWriter.open(path, { direct });
    const a = pseudoRandom(64 * KiB, 1), b = pseudoRandom(12345, 2);
    await Promise.all([w.write(0n, a), w.write(BigInt(128 * KiB), b), w.writeZeros(65536n, 4096)]);
    await w.sync();
    const got = await Deno.readFile(path);
    assert.deepEqual(got.subarray(0, 64 * KiB), a);
    assert.ok(got.subarray(64 * KiB, 68 * KiB).every((x) => x === 0));
    assert.ok(got.subarray(68 * KiB, 128 * KiB).every((x) => x === 0xee));
    assert.deepEqual(got.subarray(128 * KiB, 128 * KiB + b.length), b);
  }
  // Reading a directory fails with its errno, named.
  using d = PositionalFile.open(dir.path)!;
  await assert.rejects(d.read(0n, new Uint8Array(16)), /EISDIR/);
});

Deno.test("FileSource without --allow-ffi reads through Deno's file API, one read at a time", async () => {
  await using dir = await tempDir();
  const path = join(dir.path, "img");
  const data = pseudoRandom(300 * KiB + 5, 9);
  await Deno.writeFile(path, data);
  const script = join(dir.path, "read.ts");
  await Deno.writeTextFile(
    script,
    `import { FileSource } from "${new URL("../../../lib/backup/mod.ts", import.meta.url).href}";
using src = await FileSource.open(Deno.args[0]);
const bufs = [0, 1, 2, 3, 4].map(() => new Uint8Array(64 * 1024));
const ns = await Promise.all(bufs.map((b, k) => src.read(BigInt(k * 64 * 1024), b)));
const out = new Uint8Array(ns.reduce((s, n) => s + n, 0));
let at = 0;
for (const [k, b] of bufs.entries()) { out.set(b.subarray(0, ns[k]), at); at += ns[k]; }
console.log(JSON.stringify({ parallel: src.parallelReads, direct: src.direct, capacity: String(src.capacity) }));
await Deno.writeFile(Deno.args[1], out);
`,
  );
  const out = join(dir.path, "out");
  const run = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      `--allow-read=${dir.path},${Deno.cwd()}`,
      `--allow-write=${out}`,
      script,
      path,
      out,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(run.code, 0, new TextDecoder().decode(run.stderr));
  assert.deepEqual(JSON.parse(new TextDecoder().decode(run.stdout)), {
    parallel: 1,
    direct: false,
    capacity: String(data.length),
  });
  assert.deepEqual(await Deno.readFile(out), data.subarray(0, 5 * 64 * KiB));
  // With FFI: several reads at once, the same bytes.
  using src = await FileSource.open(path, { direct: true });
  assert.ok(src.parallelReads > 1);
  const buf = src.allocate(64 * KiB);
  assert.equal(await src.read(64n * 1024n, buf), 64 * KiB);
  assert.deepEqual(buf, data.subarray(64 * KiB, 128 * KiB));
});

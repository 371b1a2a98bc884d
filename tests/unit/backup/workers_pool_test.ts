// The process's pool of chunk worker threads (lib/backup/chunk_workers.ts):
// reused across flows, ended by shutdown and by idling, never keeping the
// process alive, and a flow's waiting calls failing when it closes without
// touching another flow's.
import assert from "node:assert/strict";
import { join } from "node:path";
import { backup, Repository, restore, verify } from "../../../lib/backup/mod.ts";
import {
  _internals,
  ChunkWorkers,
  chunkWorkerStats,
  defaultThreads,
  shutdownChunkWorkers,
  THREADS_MIN_BYTES,
} from "../../../lib/backup/chunk_workers.ts";
import { MemSource, mixedImage, pseudoRandom, sha256Hex, tempDir } from "./_helpers.ts";

const CHUNK = 16 * 1024;

Deno.test("the threads are started once and reused by the next flows, then shut down", async () => {
  shutdownChunkWorkers();
  assert.deepEqual(chunkWorkerStats(), { threads: 0, flows: 0 });
  await using dir = await tempDir();
  const repo = await Repository.init(join(dir.path, "r"), { chunkSize: CHUNK });
  const img = mixedImage(300 * 1024 + 7, 3, CHUNK);
  const { manifest } = await backup(new MemSource(img, { id: "d" }), repo, { workers: 2 });
  assert.deepEqual(chunkWorkerStats(), { threads: 2, flows: 0 }, "kept after the flow");
  const out = join(dir.path, "o.img");
  await restore(repo, manifest.id, out, { workers: 1 });
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));
  assert.equal((await verify(repo, { deep: true, workers: 2, mark: false })).ok, true);
  assert.deepEqual(chunkWorkerStats(), { threads: 2, flows: 0 }, "the same two threads");
  // A flow asking for more grows the pool.
  const r2 = await Repository.init(join(dir.path, "r2"), { chunkSize: CHUNK });
  await backup(new MemSource(img, { id: "d" }), r2, { workers: 3 });
  assert.equal(chunkWorkerStats().threads, 3);
  shutdownChunkWorkers();
  assert.deepEqual(chunkWorkerStats(), { threads: 0, flows: 0 });
  // After a shutdown the next flow starts new threads and works.
  assert.equal((await verify(repo, { deep: true, workers: 2, mark: false })).ok, true);
  assert.equal(chunkWorkerStats().threads, 2);
  shutdownChunkWorkers();
});

Deno.test("unused threads end after the idle time", async () => {
  shutdownChunkWorkers();
  const saved = _internals.idleMs;
  _internals.idleMs = 50;
  try {
    {
      using w = ChunkWorkers.start(2, { level: 1, keys: null });
      assert.equal((await w.identify(new Uint8Array(64))).name, null);
      assert.deepEqual(chunkWorkerStats(), { threads: 2, flows: 1 });
    }
    assert.deepEqual(chunkWorkerStats(), { threads: 2, flows: 0 });
    await new Promise((r) => setTimeout(r, 300));
    assert.deepEqual(chunkWorkerStats(), { threads: 0, flows: 0 });
  } finally {
    _internals.idleMs = saved;
  }
});

Deno.test("closing one flow fails its waiting calls only; another flow's calls complete", async () => {
  shutdownChunkWorkers();
  using a = ChunkWorkers.start(2, { level: 1, keys: null });
  using b = ChunkWorkers.start(2, { level: 3, keys: null });
  const data = pseudoRandom(1 << 20, 5);
  const wantName = (await b.identify(data.slice())).name!;
  const waitingA = a.identify(pseudoRandom(1 << 20, 6));
  const waitingB = b.identify(data.slice());
  a.close();
  await assert.rejects(waitingA, /closed/);
  assert.deepEqual((await waitingB).name, wantName);
  // b's codec is still known to the threads: a whole encode and decode round trip.
  const enc = await b.encode(data.slice(), wantName, new Uint8Array((1 << 20) + 4096));
  const stored = enc.out.slice(0, enc.length);
  const hex = Array.from(wantName, (x) => x.toString(16).padStart(2, "0")).join("");
  const back = await b.decode(stored, hex, 1 << 20, 1 << 20, new Uint8Array(1 << 20));
  assert.equal(sha256Hex(back.data), sha256Hex(data));
  shutdownChunkWorkers();
});

Deno.test("the process exits at once after a flow on threads, the pool still alive", async () => {
  const code = `
    import { backup, Repository, verify } from ${
    JSON.stringify(new URL("../../../lib/backup/mod.ts", import.meta.url).href)
  };
    import { _internals } from ${
    JSON.stringify(new URL("../../../lib/backup/chunk_workers.ts", import.meta.url).href)
  };
    import { MemSource, pseudoRandom } from ${
    JSON.stringify(new URL("./_helpers.ts", import.meta.url).href)
  };
    _internals.idleMs = 3_600_000; // the threads outlive the flows by far: only unref lets the process end
    const repo = await Repository.init(Deno.args[0], { chunkSize: ${CHUNK} });
    await backup(new MemSource(pseudoRandom(1 << 20, 1)), repo, { workers: 2 });
    if (!(await verify(repo, { deep: true, workers: 2, mark: false })).ok) Deno.exit(3);
    console.log("done");
  `;
  await using dir = await tempDir();
  const script = join(dir.path, "flow.ts");
  await Deno.writeTextFile(script, code);
  // A hang guard, not a timing: held by its threads, the process would wait an hour.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, join(dir.path, "r")],
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(120_000),
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  assert.equal(new TextDecoder().decode(out.stdout).trim(), "done");
});

Deno.test("defaultThreads: one per core for a flow of 256 MiB or more, else the calling thread", async () => {
  shutdownChunkWorkers();
  const cores = navigator.hardwareConcurrency;
  const many = cores >= 2 ? cores : 0;
  assert.equal(defaultThreads(0), 0);
  assert.equal(defaultThreads(THREADS_MIN_BYTES - 1), 0);
  assert.equal(defaultThreads(THREADS_MIN_BYTES), many);
  assert.equal(defaultThreads(64 * THREADS_MIN_BYTES), many);
  {
    using w = ChunkWorkers.start(cores, { level: 1, keys: null });
    assert.equal((await w.identify(new Uint8Array(64))).name, null);
  }
  // Started threads do not change it: a small flow is faster on the calling thread.
  assert.equal(defaultThreads(1), 0);
  shutdownChunkWorkers();
});

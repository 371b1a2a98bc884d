/**
 * Full backup, restore and deep verify of two images (bench/_images.ts: the
 * synthetic one with a warm page cache, the real ext4 one cold), each against
 * its CPU floor (bench/_floor.ts) and its peers, in one run:
 *
 * - full backup (library, plain repository) vs the floor (SHA-256 of every
 *   non-zero chunk, zstd of every new one, a zero test of the others, on
 *   every core); into an encrypted repository vs a plain one (worker
 *   threads vs the calling thread: bench/workers.ts);
 * - full backup as operators run it (the CLI, a new process, encrypted: the
 *   default) vs `restic backup` and `borg create`, both encrypted and reading
 *   the image from stdin, and the peak RSS of each;
 * - restore vs `dd bs=4M conv=fsync` of the image, vs `restic restore`, and
 *   peak RSS;
 * - deep verify vs the floor (CRC-32, decompression and SHA-256 of every
 *   stored chunk, on every core) and vs `restic check --read-data`; scrub
 *   (CRC-32 only) vs reading the chunk files with `cat`.
 *
 * What the peers do differently: restic and borg cut content-defined
 * chunks (dedup across shifted data; we use fixed 4 MiB chunks, which a
 * block device's data does not shift within); borg (1.2) runs on one thread.
 * Prints `BENCH` lines (see bench/run.ts). `--quick`: small images, one
 * repetition.
 *
 * @module
 */

import { fileURLToPath } from "node:url";
import { createHash } from "node:crypto";
import { backup, FileSource, Repository, restore, verify } from "../lib/backup/mod.ts";
import { CHUNK_HEADER_SIZE, ChunkEncoding, decodeChunkHeader } from "../lib/backup/chunk.ts";
import { CpuFloor, type FloorJob, JobKind, shared } from "./_floor.ts";
import { type Image, realImage, syntheticImage } from "./_images.ts";
import {
  cores,
  emit,
  ensurePeers,
  evict,
  have,
  MiB,
  quick,
  runTimed,
  sh,
  timeIt,
  versionOf,
} from "./_lib.ts";

const repoRoot = fileURLToPath(new URL("..", import.meta.url));
const reps = quick ? 1 : 3;
const chunkSize = 4 * MiB;
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-backup-" });
const cli = `'${Deno.execPath()}' run -A '${repoRoot}cli/main.ts'`;

/** The floor jobs of a full backup of `bytes`: zero test, hash, or hash + compress per chunk. */
function backupJobs(bytes: Uint8Array): { jobs: FloorJob[]; zero: number; dup: number } {
  const seen = new Set<string>();
  const jobs: FloorJob[] = [];
  const zeros = new Uint8Array(chunkSize);
  let zero = 0, dup = 0;
  for (let off = 0; off < bytes.length; off += chunkSize) {
    const c = bytes.subarray(off, off + chunkSize);
    if (Buffer.compare(c, zeros.subarray(0, c.length)) === 0) {
      jobs.push({ kind: JobKind.Zero, offset: off, length: c.length });
      zero++;
      continue;
    }
    const hex = createHash("sha256").update(c).digest("hex");
    if (seen.has(hex)) dup++;
    jobs.push({
      kind: seen.has(hex) ? JobKind.Hash : JobKind.Store,
      offset: off,
      length: c.length,
    });
    seen.add(hex);
  }
  return { jobs, zero, dup };
}

/** Every chunk file of a repository, concatenated, with the floor jobs that decode them. */
async function decodeJobs(repoPath: string): Promise<{ data: Uint8Array; jobs: FloorJob[] }> {
  const files: Uint8Array[] = [];
  for await (const fan of Deno.readDir(`${repoPath}/chunks`)) {
    if (!fan.isDirectory) continue;
    for await (const f of Deno.readDir(`${repoPath}/chunks/${fan.name}`)) {
      if (f.isFile && !f.name.startsWith(".")) {
        files.push(await Deno.readFile(`${repoPath}/chunks/${fan.name}/${f.name}`));
      }
    }
  }
  const data = shared(new Uint8Array(files.reduce((s, f) => s + f.length, 0)));
  const jobs: FloorJob[] = [];
  let at = 0;
  for (const f of files) {
    data.set(f, at);
    const h = decodeChunkHeader(f, chunkSize);
    jobs.push({
      kind: h.encoding === ChunkEncoding.Zstd ? JobKind.Decode : JobKind.DecodeRaw,
      offset: at + CHUNK_HEADER_SIZE,
      length: h.payloadLength,
      outLength: h.length,
    });
    at += f.length;
  }
  return { data, jobs };
}

// The peers run in full runs only: `--quick` checks that every row is still
// produced, and its figures mean nothing anyway.
const haveRestic = !quick && await (async () => {
  await ensurePeers();
  return await have("restic");
})();
const haveBorg = !quick && await have("borg");
/** An initialised, empty restic repository, copied for each run (`restic init` takes seconds). */
const resticTemplate = `${root}/restic-template`;
if (haveRestic) {
  await sh(`restic init --repository-version 2 -q`, {
    RESTIC_PASSWORD: "bench",
    RESTIC_REPOSITORY: resticTemplate,
  });
}
/** The peers' rows that are no goal: measured in full runs only, to keep `--quick` quick. */
const extras = !quick;
const absent = quick ? "not run with --quick" : "not installed";
const resticName = haveRestic ? await versionOf("restic") : `restic (${absent})`;
const borgName = haveBorg ? await versionOf("borg") : `borg (${absent})`;

async function benchImage(image: Image, floor: CpuFloor): Promise<void> {
  const cold = image.kind === "real";
  const tag = image.kind === "real" ? ".real" : "";
  const dir = `${root}/${image.kind}`;
  await Deno.mkdir(dir);
  const prepare = cold ? () => evict(image.path) : () => sh(`cat '${image.path}' >/dev/null`);
  const cond = `${image.describe}; ${chunkSize / MiB} MiB chunks, zstd 1; page cache ${
    cold ? "dropped before each run (cold)" : "warm"
  }; ${cores} cores`;

  const bytes = shared(await Deno.readFile(image.path));
  const { jobs, zero, dup } = backupJobs(bytes);
  const condJobs = `${cond}; ${jobs.length} chunks: ${zero} zero, ${dup} duplicate`;

  // ---- full backup: ours (library, in this process) vs the floor, and encrypted; ours
  // (CLI, encrypted: its default) vs the peers, encrypted too
  const lib: number[] = [], floorT: number[] = [], enc: number[] = [];
  const cliT: number[] = [], cliRss: number[] = [];
  const resticT: number[] = [], resticRss: number[] = [], borgT: number[] = [];
  let repoPath = "", fullId = "";
  const libRun = async (path: string, options: { passphrase?: string }) => {
    const repo = await Repository.init(path, { chunkSize, passphrase: options.passphrase });
    await prepare();
    using src = await FileSource.open(image.path, { identity: { name: "bench" } });
    let id = "";
    const t = await timeIt(async () => {
      id = (await backup(src, repo)).manifest.id;
    });
    return { t, id };
  };
  for (let r = 0; r < reps; r++) {
    floorT.push(await floor.run(bytes, jobs));
    repoPath = `${dir}/repo${r}`;
    const plain = await libRun(repoPath, {});
    lib.push(plain.t);
    fullId = plain.id;
    if (extras) {
      enc.push((await libRun(`${dir}/enc${r}`, { passphrase: "bench" })).t);
      await Deno.remove(`${dir}/enc${r}`, { recursive: true });
    }

    const cliRepo = `${dir}/cli${r}`;
    // Its key slot at the default scrypt cost (unlocking it is part of a run, as restic's is),
    // a cheap one with --quick.
    await Repository.init(cliRepo, {
      chunkSize,
      passphrase: "bench",
      scrypt: quick ? { N: 1 << 10, r: 8, p: 1 } : undefined,
    });
    await prepare();
    const c = await runTimed(
      `${cli} backup --repo '${cliRepo}' --image '${image.path}' --name bench`,
      { BLKSNAP_PASSWORD: "bench" },
    );
    cliT.push(c.seconds);
    cliRss.push(c.rssMiB);
    await Deno.remove(cliRepo, { recursive: true });

    if (haveRestic) {
      const env = {
        RESTIC_PASSWORD: "bench",
        RESTIC_REPOSITORY: `${dir}/restic${r}`,
        RESTIC_CACHE_DIR: `${dir}/rcache`,
      };
      await sh(`cp -a '${resticTemplate}' '${dir}/restic${r}'`);
      await prepare();
      const t = await runTimed(
        `restic backup -q --stdin --stdin-filename disk.img < '${image.path}'`,
        env,
      );
      resticT.push(t.seconds);
      resticRss.push(t.rssMiB);
    }
    if (haveBorg && extras) {
      const env = {
        BORG_REPO: `${dir}/borg${r}`,
        BORG_PASSPHRASE: "bench",
        BORG_BASE_DIR: `${dir}/bbase`,
      };
      await sh("borg init -e repokey-blake2", env);
      await prepare();
      borgT.push((await runTimed(`borg create -C zstd,1 ::a - < '${image.path}'`, env)).seconds);
      await Deno.remove(`${dir}/borg${r}`, { recursive: true });
    }
  }
  emit({
    id: `backup.full${tag}.vs_cpu_floor`,
    metric: `full backup (library call, plain repository) vs its CPU floor, ${image.kind} image`,
    unit: "s",
    ours: lib,
    peer: floorT,
    peerName: "CPU floor: SHA-256 + zstd -1 of new chunks, SHA-256 of duplicates, " +
      "zero test of zero chunks, on all cores, data in memory, zstd into a reused buffer",
    higherIsBetter: false,
    conditions: condJobs,
  });
  if (extras) {
    emit({
      id: `backup.full${tag}.encrypted.vs_plain`,
      metric: `full backup into an encrypted repository vs a plain one, ${image.kind} image`,
      unit: "s",
      ours: enc,
      peer: lib,
      peerName: "the same backup into a plain repository (no HMAC ids, no ChaCha20-Poly1305)",
      higherIsBetter: false,
      conditions: cond,
    });
  }
  emit({
    id: `backup.full${tag}.vs_restic`,
    metric: `full backup time (CLI process, encrypted) vs restic, ${image.kind} image`,
    unit: "s",
    ours: cliT,
    peer: haveRestic ? resticT : [0],
    peerName: `${resticName} backup --stdin (repo v2, zstd auto, AES-256-CTR + Poly1305; ` +
      "content-defined chunks; all cores); ours: ChaCha20-Poly1305, fixed 4 MiB chunks",
    higherIsBetter: false,
    conditions: cond,
  });
  if (extras) {
    emit({
      id: `backup.full${tag}.vs_borg`,
      metric: `full backup time (CLI process, encrypted) vs borg, ${image.kind} image`,
      unit: "s",
      ours: cliT,
      peer: haveBorg ? borgT : [0],
      peerName: `${borgName} create -C zstd,1 from stdin (repokey-blake2: AES-256-CTR + ` +
        "BLAKE2b; content-defined chunks; one thread)",
      higherIsBetter: false,
      conditions: cond,
    });
  }
  emit({
    id: `backup.rss${tag}.vs_restic`,
    metric: `peak RSS of a full backup (CLI process, encrypted) vs restic, ${image.kind} image`,
    unit: "MiB",
    ours: cliRss,
    peer: haveRestic ? resticRss : [0],
    peerName: `${resticName} backup --stdin`,
    higherIsBetter: false,
    conditions: cond,
  });

  // ---- restore: ours (library) vs dd copy; ours (CLI) RSS vs restic restore
  const repo = await Repository.open(repoPath);
  const restoreT: number[] = [], ddT: number[] = [], restoreRss: number[] = [];
  const rRestoreT: number[] = [], rRestoreRss: number[] = [];
  const evictRepo = () => evict(repoPath);
  for (let r = 0; r < reps; r++) {
    await (cold ? evict(image.path) : prepare());
    ddT.push(
      (await runTimed(`dd if='${image.path}' of='${dir}/copy.img' bs=4M conv=fsync 2>/dev/null`))
        .seconds,
    );
    await Deno.remove(`${dir}/copy.img`);
    if (cold) await evictRepo();
    restoreT.push(await timeIt(() => restore(repo, fullId, `${dir}/restored.img`)));
    await Deno.remove(`${dir}/restored.img`);
    if (!extras) continue;
    if (cold) await evictRepo();
    const c = await runTimed(
      `${cli} restore --repo '${repoPath}' '${fullId}' '${dir}/restored.img'`,
    );
    restoreRss.push(c.rssMiB);
    await Deno.remove(`${dir}/restored.img`);
    if (haveRestic) {
      const env = {
        RESTIC_PASSWORD: "bench",
        RESTIC_REPOSITORY: `${dir}/restic0`,
        RESTIC_CACHE_DIR: `${dir}/rcache`,
      };
      if (cold) await evict(`${dir}/restic0`);
      const t = await runTimed(`restic restore -q latest --target '${dir}/rr'`, env);
      rRestoreT.push(t.seconds);
      rRestoreRss.push(t.rssMiB);
      await Deno.remove(`${dir}/rr`, { recursive: true });
    }
  }
  emit({
    id: `restore${tag}.vs_dd`,
    metric: `restore to a new file vs dd copy, ${image.kind} image`,
    unit: "s",
    ours: restoreT,
    peer: ddT,
    peerName: "dd bs=4M conv=fsync of the image (copies only: no decompression, no checks)",
    higherIsBetter: false,
    conditions: cond,
  });
  if (extras) {
    emit({
      id: `restore${tag}.vs_restic`,
      metric: `restore to a new file vs restic restore, ${image.kind} image`,
      unit: "s",
      ours: restoreT,
      peer: haveRestic ? rRestoreT : [0],
      peerName: `${resticName} restore (decrypts, which we need not)`,
      higherIsBetter: false,
      conditions: cond,
    });
    emit({
      id: `restore.rss${tag}.vs_restic`,
      metric: `peak RSS of a restore (CLI process) vs restic, ${image.kind} image`,
      unit: "MiB",
      ours: restoreRss,
      peer: haveRestic ? rRestoreRss : [0],
      peerName: `${resticName} restore`,
      higherIsBetter: false,
      conditions: cond,
    });
  }

  // ---- deep verify vs its floor and vs restic check --read-data
  const decode = await decodeJobs(repoPath);
  const verifyT: number[] = [], vFloor: number[] = [], rCheck: number[] = [];
  const scrubT: number[] = [], readT: number[] = [];
  for (let r = 0; r < reps; r++) {
    vFloor.push(await floor.run(decode.data, decode.jobs));
    if (cold) await evictRepo();
    readT.push(
      (await runTimed(`find '${repoPath}/chunks' -type f -exec cat {} + >/dev/null`)).seconds,
    );
    if (cold) await evictRepo();
    scrubT.push(
      await timeIt(async () => {
        const rep = await verify(repo, { scrub: true });
        if (!rep.ok) throw new Error("scrub failed");
      }),
    );
    if (cold) await evictRepo();
    verifyT.push(
      await timeIt(async () => {
        const rep = await verify(repo, { deep: true, mark: false });
        if (!rep.ok) throw new Error("deep verify failed");
      }),
    );
    if (haveRestic && extras) {
      const env = {
        RESTIC_PASSWORD: "bench",
        RESTIC_REPOSITORY: `${dir}/restic0`,
        RESTIC_CACHE_DIR: `${dir}/rcache`,
      };
      if (cold) await evict(`${dir}/restic0`);
      rCheck.push((await runTimed("restic check -q --read-data", env)).seconds);
    }
  }
  const condDecode = `${cond}; ${decode.jobs.length} stored chunks, ${
    Math.round(decode.data.length / MiB)
  } MiB`;
  emit({
    id: `verify.deep${tag}.vs_cpu_floor`,
    metric: `deep verify vs its CPU floor, ${image.kind} image`,
    unit: "s",
    ours: verifyT,
    peer: vFloor,
    peerName: "CPU floor: CRC-32 + zstd decompression + SHA-256 of every stored chunk, " +
      "on all cores, files in memory, zstd into a reused buffer",
    higherIsBetter: false,
    conditions: condDecode,
  });
  emit({
    id: `verify.scrub${tag}.vs_read`,
    metric:
      `scrub (every chunk file read, CRC-32 checked) vs reading the files, ${image.kind} image`,
    unit: "s",
    ours: scrubT,
    peer: readT,
    peerName: "find chunks -type f -exec cat {} + >/dev/null",
    higherIsBetter: false,
    conditions: condDecode,
  });
  if (extras) {
    emit({
      id: `verify.deep${tag}.vs_restic`,
      metric: `deep verify vs restic check --read-data, ${image.kind} image`,
      unit: "s",
      ours: verifyT,
      peer: haveRestic ? rCheck : [0],
      peerName: `${resticName} check --read-data (decrypts and checks every pack)`,
      higherIsBetter: false,
      conditions: condDecode,
    });
  }
  await Deno.remove(dir, { recursive: true });
}

try {
  await using floor = await CpuFloor.start(cores);
  const size = quick ? 16 * MiB : 1024 * MiB;
  await benchImage(await syntheticImage(`${root}/synthetic.img`, size), floor);
  await Deno.remove(`${root}/synthetic.img`);
  await Deno.mkdir(`${root}/build`);
  await benchImage(
    await realImage(`${root}/real.img`, quick ? 32 * MiB : size, `${root}/build`),
    floor,
  );
} finally {
  await Deno.remove(root, { recursive: true });
}

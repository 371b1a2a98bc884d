/**
 * Where a full backup goes and what encryption costs, side by side on the
 * same image in one run (reps interleaved, so machine load hits all alike):
 *
 * - full backup to S3 (the real Ceph RGW of tests/s3/server.sh, on loopback)
 *   vs to a local directory, plain;
 * - encrypted (format 2) vs plain (format 1), to a local directory and to S3.
 *
 * Starts the Ceph server itself unless `BLKSNAP_S3_ENDPOINT` is set, and
 * stops what it started. The image is a quarter each zeros, text, text and
 * random bytes. Prints `BENCH` lines (see bench/run.ts). `--quick`: a
 * 16 MiB image, one repetition.
 *
 * @module
 */

import { backup, FileSource, Repository } from "../lib/backup/mod.ts";
import { aeadImplementation } from "../lib/backup/crypto/aead.ts";
import { median, spread } from "./_results.ts";
import { dropBucket, startS3 } from "./_s3.ts";

const quick = Deno.args.includes("--quick");
const MiB = 1024 * 1024;
const size = quick ? 16 * MiB : 512 * MiB;
const reps = quick ? 1 : 3;
const root = await Deno.makeTempDir({ prefix: "blksnap-bench-s3-" });
const image = `${root}/disk.img`;
const FAST_KDF = { N: 1 << 12, r: 8, p: 1 }; // the key slot's cost is not what is measured

const stopS3 = await startS3();

async function makeImage(): Promise<void> {
  const f = await Deno.open(image, { write: true, create: true, truncate: true });
  const text = new TextEncoder().encode("Nov 30 03:11:35 db1 postgres[811]: checkpoint complete\n");
  const piece = new Uint8Array(MiB);
  for (let at = 0, i = 0; at < size; at += MiB, i++) {
    const kind = i % 4;
    if (kind === 0) piece.fill(0);
    else if (kind === 3) {
      for (let o = 0; o < MiB; o += 65536) crypto.getRandomValues(piece.subarray(o, o + 65536));
    } else for (let p = 0; p < MiB; p++) piece[p] = text[(p + i * 7) % text.length] ^ (i & 7);
    await f.write(piece);
  }
  f.close();
}

type Target = "local plain" | "local encrypted" | "s3 plain" | "s3 encrypted";
const targets: Target[] = ["local plain", "local encrypted", "s3 plain", "s3 encrypted"];
const mibps: Record<Target, number[]> = {
  "local plain": [],
  "local encrypted": [],
  "s3 plain": [],
  "s3 encrypted": [],
};

async function run(target: Target, rep: number): Promise<void> {
  const encrypted = target.endsWith("encrypted");
  const bucket = `bench-${rep}-${Date.now().toString(36)}`;
  const where = target.startsWith("s3")
    ? `s3://${bucket}/bench`
    : `${root}/repo-${rep}-${encrypted}`;
  const repo = await Repository.init(where, {
    passphrase: encrypted ? "bench" : undefined,
    scrypt: FAST_KDF,
  });
  using source = await FileSource.open(image);
  const t0 = performance.now();
  await backup(source, repo);
  const s = (performance.now() - t0) / 1000;
  mibps[target].push(size / MiB / s);
  // Clean up: the OSD keeps objects in RAM.
  if (target.startsWith("s3")) {
    await dropBucket(bucket);
  } else {
    await Deno.remove(where, { recursive: true });
  }
}

function report(id: string, metric: string, ours: Target, peer: Target): void {
  const o = median(mibps[ours]);
  const p = median(mibps[peer]);
  console.log(`BENCH ${
    JSON.stringify({
      id,
      metric,
      unit: "MiB/s",
      ours: Math.round(o),
      peer: Math.round(p),
      peerName: peer,
      higherIsBetter: true,
      reps,
      spread: Number(spread(mibps[ours]).toFixed(3)),
      ratio: Number((o / p).toFixed(3)),
      conditions: `${size / MiB} MiB image, 4 MiB chunks, Ceph RGW 16 on loopback, ` +
        `cipher ${aeadImplementation()}, Deno ${Deno.version.deno}`,
    })
  }`);
}

try {
  await makeImage();
  for (let rep = 0; rep < reps; rep++) {
    for (const t of targets) await run(t, rep);
  }
  report(
    "s3.full.vs_local",
    "full backup to S3 (RGW, loopback) vs local directory",
    "s3 plain",
    "local plain",
  );
  report(
    "encryption.full_local.vs_plain",
    "full backup encrypted vs plain, local directory",
    "local encrypted",
    "local plain",
  );
  report(
    "encryption.full_s3.vs_plain",
    "full backup encrypted vs plain, S3",
    "s3 encrypted",
    "s3 plain",
  );
  for (const t of targets) {
    console.log(`  ${t}: ${mibps[t].map((v) => v.toFixed(0)).join(", ")} MiB/s`);
  }
} finally {
  await Deno.remove(root, { recursive: true });
  await stopS3();
}

// The operator commands on an encrypted S3 repository, through the CLI as an operator runs them:
// damage found by a deep verify heals on the next backup and by `repair`; `stats`, `diff`,
// `forget latest`, `prune --keep-within` and `unlock` of another host's lease. Everything goes
// through the Backend (no path of a local directory) and the repository's keys (keyed chunk ids,
// sealed manifests, indexes and damage record).
import assert from "node:assert/strict";
import { join } from "node:path";
import { S3Client } from "../../lib/backup/s3/client.ts";
import { pseudoRandom, sha256Hex, tempDir } from "../unit/backup/_helpers.ts";
import { freshBucket, ignore, server } from "./_server.ts";

const KiB = 1024;
const MiB = 1024 * KiB;

/** `deno run -A cli/main.ts ARGS` with the passphrase in the environment. */
async function cli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../../cli/main.ts", import.meta.url).pathname, ...args],
    env: { NO_COLOR: "1", BLKSNAP_PASSWORD: "operator passphrase" },
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** The CLI's `--json` document (checked field by field); the exit status must be `code`. */
// deno-lint-ignore no-explicit-any
async function json(code: number, ...args: string[]): Promise<any> {
  const r = await cli(["--json", ...args]);
  assert.equal(r.code, code, `blksnap ${args.join(" ")}: ${r.stdout}${r.stderr}`);
  return JSON.parse(r.stdout);
}

Deno.test({
  name: "s3 repo (encrypted): damage heals by backup and repair; stats, diff, forget, unlock",
  ignore,
}, async () => {
  await using bucket = await freshBucket("operator");
  await using dir = await tempDir();
  const url = `s3://${bucket.bucket}/hosts/db1`;
  const raw = new S3Client({ ...server!, bucket: bucket.bucket });
  const chunkKeys = async () => {
    const out: string[] = [];
    for await (const o of raw.list("hosts/db1/chunks/")) out.push(o.key);
    return out.sort();
  };
  const size = 4 * MiB;
  const img = pseudoRandom(size, 41);
  const file = join(dir.path, "disk.img");
  await Deno.writeFile(file, img);
  const r = "-r";
  // scrypt at 2^12 (the default 2^17 costs seconds a command on this shared machine).
  await json(0, "init", r, url, "--chunk-size", "256K", "--kdf-log2n", "12");
  const first =
    (await json(0, "backup", r, url, "--image", file, "--name", "disk")).backups[0].manifest;
  assert.equal(first.mode, "full");

  // A chunk altered behind our back: the deep verify names it and marks the backup failed.
  const [victim] = await chunkKeys();
  const altered = (await raw.getObject(victim))!;
  altered[altered.length - 9] ^= 0x20;
  await raw.putObject(victim, altered);
  const found = await json(3, "verify", r, url, "--deep");
  assert.deepEqual(found.badChunks.map((c: { problem: string }) => c.problem), ["corrupt"]);
  assert.deepEqual(found.badChunks[0].backups, [first.id]);
  // The damage record is sealed like every other object of an encrypted repository.
  const record = await raw.getObject("hosts/db1/damage.json");
  assert.ok(record !== null, "a deep verify that found damage records it");
  assert.ok(!new TextDecoder().decode(record).includes(found.badChunks[0].digest));

  // The next backup of the same data rewrites the chunk; verify says the first is whole again.
  const again = (await json(0, "backup", r, url, "--image", file, "--name", "disk")).backups[0];
  const second = again.manifest;
  assert.equal(second.mode, "full"); // its parent failed verification
  assert.equal(again.healed.length, 1);
  const healed = await json(0, "verify", r, url, "--deep");
  assert.deepEqual(healed.healedBackups, [first.id]);
  const out = join(dir.path, "first.img");
  await json(0, "restore", r, url, first.id, out);
  assert.equal(sha256Hex(await Deno.readFile(out)), sha256Hex(img));

  // One chunk deleted and one altered: repair rewrites both from the image file.
  const [gone, bad] = (await chunkKeys()).slice(1, 3);
  await raw.deleteObject(gone);
  const flipped = (await raw.getObject(bad))!;
  flipped[flipped.length - 9] ^= 0x20;
  await raw.putObject(bad, flipped);
  await json(3, "verify", r, url, "--deep");
  const repaired = await json(0, "repair", r, url, "--source", file);
  assert.equal(repaired.wanted, 2);
  assert.equal(repaired.repaired.length, 2);
  assert.deepEqual(repaired.lost, []);
  assert.equal((await json(0, "verify", r, url, "--deep")).ok, true);

  // A third backup with 300 KiB changed from 1 MiB on: diff counts two 256 KiB chunks.
  img.set(pseudoRandom(300 * KiB, 42), 1 * MiB);
  await Deno.writeFile(file, img);
  const third =
    (await json(0, "backup", r, url, "--image", file, "--name", "disk")).backups[0].manifest;
  const d = await json(0, "diff", r, url, second.id, "latest");
  assert.equal(d.b.id, third.id);
  assert.equal(d.chunksChanged, 2);
  assert.equal(d.bytesChanged, 512 * KiB);
  assert.equal(d.chunksOnlyInB, 2);
  const s = await json(0, "stats", r, url);
  assert.equal(s.backups, 3);
  assert.equal(BigInt(s.logicalBytes), 3n * BigInt(size));
  assert.equal(s.chunks, 16 + 2);
  assert.equal(s.devices.length, 1);
  assert.equal(s.missingChunks, 0);

  // forget latest; prune --keep-within keeps what is younger than a day (both left).
  const forgot = await json(0, "forget", r, url, "latest");
  assert.deepEqual(forgot.removed, [third.id]);
  const pr = await json(0, "prune", r, url, "--keep-within", "1d");
  assert.deepEqual(pr.removed, []);
  const listed = await json(0, "list", r, url);
  assert.deepEqual(listed.backups.map((b: { id: string }) => b.id), [first.id, second.id]);

  // A lease another host left: writers and unlock refuse it (exit 4, naming the holder), --force
  // removes it, and the freed chunks of the forgotten backup go with gc.
  const lease = {
    pid: 4242,
    host: "db2.example",
    time: new Date().toISOString(),
    operation: "backup",
    token: "0123456789abcdef",
  };
  await raw.putObject("hosts/db1/lock", new TextEncoder().encode(JSON.stringify(lease)));
  const refused = await cli(["unlock", r, url]);
  assert.equal(refused.code, 4, refused.stdout + refused.stderr);
  assert.match(refused.stderr, /db2\.example/);
  assert.equal((await cli(["gc", r, url, "--grace", "0"])).code, 4);
  const unlocked = await json(0, "unlock", r, url, "--force");
  assert.equal(unlocked.removed.info.host, "db2.example");
  assert.equal(await raw.headObject("hosts/db1/lock"), null);
  const g = await json(0, "gc", r, url, "--grace", "0");
  assert.equal(g.chunksRemoved, 2);
  assert.equal((await chunkKeys()).length, 16);
});

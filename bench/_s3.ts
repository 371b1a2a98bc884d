/**
 * The S3 server of the host benchmarks: the real Ceph RGW of
 * tests/s3/server.sh on loopback, started unless `BLKSNAP_S3_ENDPOINT` is set
 * (its `export` lines go into this process's environment), and buckets
 * dropped after use (the OSD holds every object in RAM).
 *
 * @module
 */

import { S3Client } from "../lib/backup/s3/client.ts";
import { s3SettingsFromEnv } from "../lib/backup/s3/config.ts";

const server = new URL("../tests/s3/server.sh", import.meta.url).pathname;

/**
 * Starts the server unless one is configured or answering; returns what
 * stops it again (nothing for a server someone else started).
 */
export async function startS3(): Promise<() => Promise<void>> {
  if (Deno.env.get("BLKSNAP_S3_ENDPOINT")) return () => Promise.resolve();
  const running = (await new Deno.Command("bash", { args: [server, "status"] }).output()).success;
  const out = await new Deno.Command("bash", {
    args: [server, running ? "env" : "start"],
    stdout: "piped",
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error("bench: the Ceph server did not start");
  for (const m of new TextDecoder().decode(out.stdout).matchAll(/^export (\w+)=(.*)$/gm)) {
    Deno.env.set(m[1], m[2]);
  }
  if (running) return () => Promise.resolve(); // a server someone else started is left running
  return async () => {
    await new Deno.Command("bash", { args: [server, "stop"] }).output();
  };
}

/** Deletes every object of `bucket`, then the bucket. */
export async function dropBucket(bucket: string): Promise<void> {
  const client = new S3Client({ ...s3SettingsFromEnv(), bucket });
  const keys: string[] = [];
  for await (const o of client.list("")) keys.push(o.key);
  for (let i = 0; i < keys.length; i += 1000) await client.deleteObjects(keys.slice(i, i + 1000));
  await client.deleteBucket();
}

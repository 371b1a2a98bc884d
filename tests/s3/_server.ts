/**
 * What the S3 tests share: the real server's settings (from the `export`
 * lines of `bash tests/s3/server.sh start`, which `deno task test` runs), a
 * fresh bucket per test, and a fault-injecting proxy in front of the server.
 *
 * @module
 */

import { S3Client } from "../../lib/backup/s3/client.ts";
import type { S3Settings } from "../../lib/backup/s3/config.ts";

/** The running test server, or `null` when `BLKSNAP_S3_ENDPOINT` is not set (tests skip). */
export const server: S3Settings | null = (() => {
  const endpoint = Deno.env.get("BLKSNAP_S3_ENDPOINT");
  const accessKeyId = Deno.env.get("AWS_ACCESS_KEY_ID");
  const secretAccessKey = Deno.env.get("AWS_SECRET_ACCESS_KEY");
  if (!endpoint || !accessKeyId || !secretAccessKey) return null;
  return {
    endpoint,
    region: Deno.env.get("AWS_REGION") ?? "default",
    credentials: { accessKeyId, secretAccessKey },
  };
})();

/** Skip S3 tests when no server is configured (`deno test tests/s3` by hand). */
export const ignore = server === null;

let counter = 0;

/** A new, empty bucket named after the test; removed (objects and all) by `dispose`. */
export async function freshBucket(
  label: string,
  options: { objectLock?: boolean; endpoint?: string } = {},
): Promise<S3Client & AsyncDisposable> {
  const s = server!;
  const name = `t-${label.toLowerCase().replace(/[^a-z0-9-]/g, "-").slice(0, 30)}-${
    Date.now().toString(36)
  }-${counter++}`;
  const client = new S3Client({ ...s, endpoint: options.endpoint ?? s.endpoint, bucket: name });
  await client.createBucket({ objectLock: options.objectLock });
  return Object.assign(client, {
    async [Symbol.asyncDispose](): Promise<void> {
      await emptyAndDelete(new S3Client({ ...s, bucket: name }), options.objectLock ?? false);
    },
  });
}

/** Remove every object (every version when locked, bypassing governance) and the bucket. */
export async function emptyAndDelete(client: S3Client, locked: boolean): Promise<void> {
  if (locked) {
    // Locked buckets keep versions; the test server has governance retention only and
    // the test user may bypass it.
    for await (const v of client.listVersions("")) {
      await client.deleteVersion(v.key, v.versionId, { bypassGovernance: true });
    }
  } else {
    const keys: string[] = [];
    for await (const o of client.list("")) keys.push(o.key);
    for (let i = 0; i < keys.length; i += 1000) await client.deleteObjects(keys.slice(i, i + 1000));
  }
  await client.deleteBucket();
}

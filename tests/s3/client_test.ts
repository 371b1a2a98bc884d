// The S3 client against the real Ceph RGW (tests/s3/server.sh): every operation the repository
// uses, the RGW quirks it must live with, Object Lock enforcement, and retries through a proxy
// that throttles, fails and drops connections in front of the real server.
import assert from "node:assert/strict";
import { S3Client, S3Error } from "../../lib/backup/s3/client.ts";
import { freshBucket, ignore, server } from "./_server.ts";
import { startProxy } from "./_proxy.ts";

const rand = (n: number): Uint8Array => {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i += 65536) crypto.getRandomValues(b.subarray(i, Math.min(n, i + 65536)));
  return b;
};

Deno.test({ name: "s3 rgw: put, ranged get, head, list pages, batch delete", ignore }, async () => {
  await using s3 = await freshBucket("basic");
  const chunk = rand(4 << 20);
  assert.equal(await s3.putObject("chunks/ab/one", chunk), true);
  assert.deepEqual(await s3.getObject("chunks/ab/one"), chunk);
  assert.deepEqual(
    await s3.getObject("chunks/ab/one", { start: 4000000, end: 4000099 }),
    chunk.subarray(4000000, 4000100),
  );
  assert.equal((await s3.headObject("chunks/ab/one"))?.size, 4 << 20);
  assert.equal(await s3.getObject("chunks/ab/none"), null);
  assert.equal(await s3.headObject("chunks/ab/none"), null);
  // More than one listing page (1000 keys): 1100 small objects, 16 at a time.
  const keys = Array.from({ length: 1100 }, (_, i) => `many/${String(i).padStart(5, "0")}`);
  for (let i = 0; i < keys.length; i += 16) {
    await Promise.all(keys.slice(i, i + 16).map((k) => s3.putObject(k, new Uint8Array([1, 2, 3]))));
  }
  const listed: string[] = [];
  for await (const o of s3.list("many/")) listed.push(o.key);
  assert.deepEqual(listed, keys);
  assert.deepEqual(await s3.deleteObjects(keys.slice(0, 1000)), []);
  assert.deepEqual(await s3.deleteObjects(keys.slice(1000)), []);
  let left = 0;
  for await (const _ of s3.list("many/")) left++;
  assert.equal(left, 0);
  await s3.deleteObject("chunks/ab/one");
  await s3.deleteObject("chunks/ab/one"); // already gone: no error
});

Deno.test(
  { name: "s3 rgw: create-only put is refused on an existing key (unversioned)", ignore },
  async () => {
    await using s3 = await freshBucket("inm");
    assert.equal(await s3.putObject("lock", new Uint8Array([1]), { ifNoneMatch: true }), true);
    assert.equal(await s3.putObject("lock", new Uint8Array([2]), { ifNoneMatch: true }), false);
    assert.deepEqual(await s3.getObject("lock"), new Uint8Array([1]));
  },
);

Deno.test({ name: "s3 rgw: Object Lock retention is set and enforced", ignore }, async () => {
  await using s3 = await freshBucket("lock", { objectLock: true });
  assert.equal(await s3.objectLockEnabled(), true);
  const until = new Date(Date.now() + 2 * 86400_000);
  await s3.putObject("k", rand(1000), { retainUntil: until });
  const r = await s3.getRetention("k");
  assert.equal(r?.mode, "GOVERNANCE");
  assert.equal(Math.abs(r!.until.getTime() - until.getTime()) < 1000, true);
  // Extending is allowed; a plain DELETE only adds a delete marker; the version stays.
  await s3.putRetention("k", { mode: "GOVERNANCE", until: new Date(until.getTime() + 86400_000) });
  await s3.deleteObject("k");
  assert.equal(await s3.headObject("k"), null);
  const versions = [];
  for await (const v of s3.listVersions("k")) versions.push(v);
  const data = versions.find((v) => !v.deleteMarker)!;
  const refused = await s3.deleteVersion("k", data.versionId).catch((e) => e);
  assert.ok(refused instanceof S3Error && refused.status === 403, String(refused));
  const unlocked = new S3Client({ ...server!, bucket: s3.bucket });
  assert.equal(await unlocked.objectLockEnabled(), true);
});

Deno.test({ name: "s3 rgw: a bucket without Object Lock says so", ignore }, async () => {
  await using s3 = await freshBucket("nolock");
  assert.equal(await s3.objectLockEnabled(), false);
});

Deno.test({ name: "s3 rgw: wrong keys are a clear 403, not retried", ignore }, async () => {
  await using s3 = await freshBucket("keys");
  const bad = new S3Client({
    ...server!,
    bucket: s3.bucket,
    credentials: { accessKeyId: server!.credentials.accessKeyId, secretAccessKey: "wrong" },
  });
  const e = await bad.putObject("k", new Uint8Array(1)).catch((e) => e);
  assert.ok(e instanceof S3Error);
  assert.equal(e.status, 403);
  assert.equal(e.code, "SignatureDoesNotMatch");
  assert.equal(e.attempts, 1);
});

Deno.test(
  { name: "s3 rgw: retries through a proxy that throttles, fails and drops", ignore },
  async () => {
    await using s3 = await freshBucket("proxy");
    // Every third request passes; the others get SlowDown, 500, 429 or a dropped connection.
    const faults = ["slowdown", "error500", "throttle429", "drop"] as const;
    await using proxy = startProxy(
      server!.endpoint,
      server!.credentials,
      (_req, n) => (n % 3 === 2 ? "pass" : faults[n % 4]),
    );
    const retries: string[] = [];
    const client = new S3Client({
      ...server!,
      endpoint: proxy.endpoint,
      bucket: s3.bucket,
      retry: { baseDelayMs: 5, maxDelayMs: 50 },
      onRetry: (r) => retries.push(r.reason),
    });
    const data = rand(1 << 20);
    for (let i = 0; i < 5; i++) await client.putObject(`k${i}`, data);
    for (let i = 0; i < 5; i++) assert.deepEqual(await client.getObject(`k${i}`), data);
    const listed = [];
    for await (const o of client.list("k")) listed.push(o.key);
    assert.equal(listed.length, 5);
    assert.ok(retries.some((r) => r.includes("SlowDown")), retries.join(","));
    assert.ok(retries.some((r) => r.includes("500")), retries.join(","));
    assert.ok(retries.some((r) => r.includes("429")), retries.join(","));
    assert.ok(retries.some((r) => !/^\d/.test(r)), retries.join(",")); // a network error
    assert.ok(proxy.log.filter((l) => l.fault === "pass").length >= 11);
  },
);

Deno.test({
  name: "s3 rgw: an unreachable endpoint fails after its retries with NetworkError",
  ignore,
}, async () => {
  const dead = new S3Client({
    ...server!,
    endpoint: "http://127.0.0.1:9",
    bucket: "nothing-here",
    retry: { maxAttempts: 3, baseDelayMs: 1, maxDelayMs: 2 },
  });
  const e = await dead.getObject("k").catch((e) => e);
  assert.ok(e instanceof S3Error);
  assert.equal(e.code, "NetworkError");
  assert.equal(e.attempts, 3);
  assert.match(e.message, /127\.0\.0\.1:9.*gave up after 3 attempts/);
});

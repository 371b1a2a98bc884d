// Error paths of the S3 client with an injected fetch (the proof that S3 works is tests/s3/,
// against a real Ceph RGW): what is retried, what is not, how long it waits, what it reports.
import assert from "node:assert/strict";
import { S3Client, S3Error } from "../../../lib/backup/s3/client.ts";
import { backoffMs, DEFAULT_RETRY, isRetryableStatus } from "../../../lib/backup/s3/retry.ts";
import { decodeEntities, escapeXml, parseXml } from "../../../lib/backup/s3/xml.ts";

type Answer = Response | Error;

function client(answers: Answer[], seen: Request[] = [], delays: number[] = []): S3Client {
  return new S3Client({
    endpoint: "http://127.0.0.1:1",
    bucket: "b",
    credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
    retry: { maxAttempts: 4 },
    fetch: ((input: URL, init: RequestInit) => {
      seen.push(new Request(input, init));
      const a = answers.shift();
      if (a === undefined) throw new Error("no more answers");
      return a instanceof Error ? Promise.reject(a) : Promise.resolve(a);
    }) as typeof fetch,
    sleep: (ms) => {
      delays.push(ms);
      return Promise.resolve();
    },
  });
}

const xmlError = (code: string, status: number, headers: Record<string, string> = {}) =>
  new Response(`<?xml version="1.0"?><Error><Code>${code}</Code><Message>m</Message></Error>`, {
    status,
    headers,
  });

Deno.test("s3 client: 503 SlowDown, 500 and a network error are retried", async () => {
  const seen: Request[] = [];
  const s3 = client([
    xmlError("SlowDown", 503),
    xmlError("InternalError", 500),
    new TypeError("connection reset"),
    new Response("data"),
  ], seen);
  assert.equal(new TextDecoder().decode((await s3.getObject("k"))!), "data");
  assert.equal(seen.length, 4);
  // Each attempt is signed afresh.
  assert.ok(seen.every((r) => r.headers.get("authorization")?.startsWith("AWS4-HMAC-SHA256")));
});

Deno.test("s3 client: 429 honours Retry-After as a floor", async () => {
  const delays: number[] = [];
  const s3 = client(
    [xmlError("TooManyRequests", 429, { "retry-after": "2" }), new Response("")],
    [],
    delays,
  );
  await s3.putObject("k", new Uint8Array(3));
  assert.deepEqual(delays, [2000]);
});

Deno.test("s3 client: 403 is not retried and names the key and code", async () => {
  const seen: Request[] = [];
  const s3 = client([xmlError("AccessDenied", 403)], seen);
  const e = await s3.putObject("chunks/ab/cd", new Uint8Array(1)).catch((e) => e);
  assert.ok(e instanceof S3Error);
  assert.equal(e.code, "AccessDenied");
  assert.equal(e.status, 403);
  assert.equal(e.key, "chunks/ab/cd");
  assert.equal(seen.length, 1);
});

Deno.test("s3 client: gives up after maxAttempts and says so", async () => {
  const s3 = client([
    xmlError("SlowDown", 503),
    xmlError("SlowDown", 503),
    xmlError("SlowDown", 503),
    xmlError("SlowDown", 503),
  ]);
  const e = await s3.getObject("k").catch((e) => e);
  assert.ok(e instanceof S3Error);
  assert.equal(e.attempts, 4);
  assert.match(e.message, /SlowDown.*gave up after 4 attempts/);
});

Deno.test("s3 client: a body shorter than its Content-Length is retried", async () => {
  // A stream body keeps the announced content-length, as a connection cut mid-body would.
  const truncated = new Response(
    new ReadableStream({
      start(c): void {
        c.enqueue(new Uint8Array(3));
        c.close();
      },
    }),
    { headers: { "content-length": "10" } },
  );
  const seen: Request[] = [];
  const s3 = client([truncated, new Response("0123456789")], seen);
  assert.equal((await s3.getObject("k"))!.length, 10);
  assert.equal(seen.length, 2);
});

Deno.test("s3 client: PUT sends a fixed-length body, a signed payload hash, Object Lock headers", async () => {
  const seen: Request[] = [];
  const s3 = client([new Response("")], seen);
  const body = new TextEncoder().encode("hello");
  await s3.putObject("x", body, {
    retainUntil: new Date("2030-01-01T00:00:00Z"),
    lockMode: "COMPLIANCE",
  });
  const r = seen[0];
  assert.equal(r.method, "PUT");
  assert.equal(new URL(r.url).pathname, "/b/x");
  assert.equal(
    r.headers.get("x-amz-content-sha256"),
    "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824",
  );
  assert.equal(r.headers.get("x-amz-object-lock-mode"), "COMPLIANCE");
  assert.equal(r.headers.get("x-amz-object-lock-retain-until-date"), "2030-01-01T00:00:00.000Z");
  assert.equal(r.headers.get("content-md5"), "XUFAKrxLKna5cZ2REBfFkg==");
  assert.equal(new TextDecoder().decode(await r.arrayBuffer()), "hello");
});

Deno.test("s3 client: create-only PUT reports an existing object as false", async () => {
  const s3 = client([xmlError("PreconditionFailed", 412)]);
  assert.equal(await s3.putObject("x", new Uint8Array(1), { ifNoneMatch: true }), false);
});

Deno.test("s3 client: GET of a missing key is null, a range answered whole is cut", async () => {
  const s3 = client([xmlError("NoSuchKey", 404), new Response("0123456789")]);
  assert.equal(await s3.getObject("k"), null);
  assert.equal(new TextDecoder().decode((await s3.getObject("k", { start: 0, end: 3 }))!), "0123");
});

Deno.test("s3 client: listing follows continuation tokens and decodes keys", async () => {
  const page = (keys: string[], next?: string) =>
    new Response(
      `<?xml version="1.0" encoding="UTF-8"?><ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">` +
        `<Name>b</Name><IsTruncated>${next ? "true" : "false"}</IsTruncated>` +
        (next ? `<NextContinuationToken>${next}</NextContinuationToken>` : "") +
        keys.map((k) =>
          `<Contents><Key>${
            escapeXml(k)
          }</Key><LastModified>2026-11-30T09:00:00.000Z</LastModified>` +
          `<ETag>&quot;abc&quot;</ETag><Size>7</Size></Contents>`
        ).join("") + `</ListBucketResult>`,
    );
  const seen: Request[] = [];
  const s3 = client([page(["a&b", "c"], "tok+/="), page(["d"])], seen);
  const out = [];
  for await (const o of s3.list("p/")) out.push(o);
  assert.deepEqual(out.map((o) => o.key), ["a&b", "c", "d"]);
  assert.equal(out[0].etag, "abc");
  assert.equal(out[0].size, 7);
  assert.equal(out[0].lastModified, Date.parse("2026-11-30T09:00:00Z"));
  assert.equal(new URL(seen[1].url).searchParams.get("continuation-token"), "tok+/=");
});

Deno.test("s3 client: DeleteObjects returns the refused keys", async () => {
  const s3 = client([
    new Response(
      `<DeleteResult><Error><Key>k1</Key><Code>AccessDenied</Code><Message>locked</Message></Error></DeleteResult>`,
    ),
  ]);
  assert.deepEqual(await s3.deleteObjects(["k1", "k2"]), [
    { key: "k1", code: "AccessDenied", message: "locked" },
  ]);
});

Deno.test("s3 retry: classification and full-jitter backoff", () => {
  assert.ok(isRetryableStatus(500));
  assert.ok(isRetryableStatus(503, "SlowDown"));
  assert.ok(isRetryableStatus(400, "RequestTimeout"));
  assert.ok(isRetryableStatus(429));
  assert.ok(!isRetryableStatus(403, "AccessDenied"));
  assert.ok(!isRetryableStatus(404));
  assert.equal(backoffMs(1, DEFAULT_RETRY, () => 0.999999), 199);
  assert.equal(backoffMs(20, DEFAULT_RETRY, () => 1), DEFAULT_RETRY.maxDelayMs);
  assert.equal(backoffMs(1, DEFAULT_RETRY, () => 0, 3), 3000);
});

Deno.test("xml: elements, entities, namespaces, CDATA; errors on bad nesting", () => {
  const root = parseXml(
    `<?xml version="1.0"?><!-- c --><a:R xmlns:a="x"><K>1 &lt; 2 &amp;&#65;&#x42;</K><E/><C><![CDATA[<raw>]]></C></a:R>`,
  );
  assert.equal(root.name, "R");
  assert.equal(root.children[0].text, "1 < 2 &AB");
  assert.equal(root.children[1].name, "E");
  assert.equal(root.children[2].text, "<raw>");
  assert.equal(decodeEntities("&quot;&apos;&unknown;"), `"'&unknown;`);
  assert.throws(() => parseXml("<a><b></a>"), SyntaxError);
  assert.throws(() => parseXml("<a>"), SyntaxError);
});

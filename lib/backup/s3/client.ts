/**
 * A small S3 client over `fetch`: path-style addressing, SigV4 header
 * signing with a signed payload hash, fixed-length bodies (Ceph Pacific
 * refuses chunked uploads), retries with jittered backoff on network errors,
 * 5xx, 429 and throttling codes, and a length check of every body read. Only
 * what the repository needs: object GET (ranged), PUT (optionally
 * create-only and with Object Lock retention), HEAD, DELETE, batch delete,
 * ListObjectsV2 and bucket creation.
 *
 * Every operation it retries is idempotent: a PUT of a whole object with the
 * same name and bytes, a GET, a DELETE, a LIST.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { backoffMs, DEFAULT_RETRY, isRetryableStatus, type RetryPolicy } from "./retry.ts";
import { type Credentials, EMPTY_SHA256, encodePath, sign } from "./sigv4.ts";
import { children, childText, escapeXml, parseXml } from "./xml.ts";

/** Options of {@linkcode S3Client}. */
export interface S3ClientOptions {
  /** `http://host:port` or `https://host`; TLS when https. */
  endpoint: string;
  /** Bucket name. */
  bucket: string;
  /** Signing region. @default "us-east-1" */
  region?: string;
  /** Keys to sign with. */
  credentials: Credentials;
  /** Retry policy. @default DEFAULT_RETRY */
  retry?: Partial<RetryPolicy>;
  /** Give up one attempt after this many milliseconds. @default 120000 */
  timeoutMs?: number;
  /** The `fetch` to call (unit tests of error paths inject one). @default globalThis.fetch */
  fetch?: typeof fetch;
  /** Wait function (unit tests make backoff instant). */
  sleep?: (ms: number) => Promise<void>;
  /** Called before each retry, with what failed (for logs and tests). */
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

/** An error answer of the server, or a request that failed after all retries. */
export class S3Error extends Error {
  /** Always `"S3Error"`. */
  override name = "S3Error";
  /** HTTP status, 0 for a network error. */
  readonly status: number;
  /** The S3 error code (`NoSuchKey`, `SlowDown`, ...) or `NetworkError`. */
  readonly code: string;
  /** The object key or bucket the request was about. */
  readonly key: string;
  /** Attempts made. */
  readonly attempts: number;
  /** Build the error. */
  constructor(
    status: number,
    code: string,
    key: string,
    message: string,
    attempts: number,
    cause?: unknown,
  ) {
    super(message, cause === undefined ? undefined : { cause });
    this.status = status;
    this.code = code;
    this.key = key;
    this.attempts = attempts;
  }
}

/** One entry of a listing. */
export interface S3Object {
  /** Full key. */
  key: string;
  /** Size in bytes. */
  size: number;
  /** Last modification time, milliseconds since the epoch. */
  lastModified: number;
  /** ETag without quotes. */
  etag: string;
}

/** Options of {@linkcode S3Client.putObject}. */
export interface PutOptions {
  /** Fail with 412 if the key exists (`If-None-Match: *`; ignored by Ceph on versioned buckets). */
  ifNoneMatch?: boolean;
  /** Object Lock retention until this time. */
  retainUntil?: Date;
  /** Object Lock mode. @default "GOVERNANCE" */
  lockMode?: "GOVERNANCE" | "COMPLIANCE";
  /** Content type. @default "application/octet-stream" */
  contentType?: string;
}

/** Object Lock retention of one object. */
export interface Retention {
  /** Mode. */
  mode: "GOVERNANCE" | "COMPLIANCE";
  /** Retained until. */
  until: Date;
}

interface Request {
  method: string;
  key: string;
  query?: Record<string, string>;
  headers?: Record<string, string>;
  body?: Uint8Array;
  /** Statuses that are answers, not errors (404 for a GET that may miss). */
  accept?: number[];
  signal?: AbortSignal;
}

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Hex SHA-256 of a body on Deno's thread pool (bodies are up to a chunk, 4 MiB). */
async function payloadSha256(body: Uint8Array): Promise<string> {
  if (body.length === 0) return EMPTY_SHA256;
  const d = new Uint8Array(
    await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>),
  );
  return Array.from(d, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Strip the quotes S3 puts around an ETag (RGW compares `If-Match` without them). */
export function unquoteEtag(etag: string | null): string {
  return (etag ?? "").replace(/^W\//, "").replace(/^"|"$/g, "");
}

/**
 * A client of one bucket.
 *
 * @example Put, read back a range, list and delete
 * ```ts ignore
 * import { S3Client } from "./client.ts";
 * const s3 = new S3Client({
 *   endpoint: "http://127.0.0.1:7480",
 *   bucket: "backups",
 *   credentials: { accessKeyId: "AK", secretAccessKey: "SK" },
 * });
 * await s3.createBucket();
 * await s3.putObject("a/b", new TextEncoder().encode("hello"));
 * console.log(await s3.getObject("a/b", { start: 1, end: 3 })); // "ell"
 * for await (const o of s3.list("a/")) console.log(o.key, o.size);
 * await s3.deleteObject("a/b");
 * ```
 */
export class S3Client {
  /** Bucket name. */
  readonly bucket: string;
  /** Endpoint URL. */
  readonly endpoint: URL;
  readonly #region: string;
  readonly #credentials: Credentials;
  readonly #retry: RetryPolicy;
  readonly #timeoutMs: number;
  readonly #fetch: typeof fetch;
  readonly #sleep: (ms: number) => Promise<void>;
  readonly #onRetry?: S3ClientOptions["onRetry"];

  /** A client of `options.bucket` at `options.endpoint`. */
  constructor(options: S3ClientOptions) {
    this.endpoint = new URL(options.endpoint);
    if (this.endpoint.protocol !== "http:" && this.endpoint.protocol !== "https:") {
      throw new TypeError(`S3 endpoint must be http:// or https://, not ${options.endpoint}`);
    }
    this.bucket = options.bucket;
    this.#region = options.region ?? "us-east-1";
    this.#credentials = options.credentials;
    this.#retry = { ...DEFAULT_RETRY, ...options.retry };
    this.#timeoutMs = options.timeoutMs ?? 120_000;
    this.#fetch = options.fetch ?? globalThis.fetch;
    this.#sleep = options.sleep ?? sleepReal;
    this.#onRetry = options.onRetry;
  }

  #url(key: string, query?: Record<string, string>): URL {
    const base = this.endpoint.pathname.replace(/\/$/, "");
    const path = `${base}/${this.bucket}${key === "" ? "" : "/" + key}`;
    const url = new URL(this.endpoint.origin + encodePath(path));
    for (const [k, v] of Object.entries(query ?? {})) url.searchParams.set(k, v);
    // URLSearchParams encodes a space as "+"; S3 wants %20 in the signed and sent query.
    url.search = url.search.replace(/\+/g, "%20");
    return url;
  }

  /**
   * Send one request with retries. Returns the response with its body read;
   * throws {@linkcode S3Error} for a non-accepted status or when retries run out.
   */
  async #send(req: Request): Promise<{ res: Response; body: Uint8Array }> {
    const body = req.body ?? new Uint8Array(0);
    const payloadHash = await payloadSha256(body);
    const url = this.#url(req.key, req.query);
    const what = `${req.method} ${req.key || this.bucket}`;
    for (let attempt = 1;; attempt++) {
      req.signal?.throwIfAborted();
      const headers = sign({
        method: req.method,
        url,
        headers: { ...req.headers },
        payloadHash,
        region: this.#region,
        time: new Date(),
      }, this.#credentials);
      let reason: string;
      let retryAfter: number | undefined;
      let failure: S3Error;
      const timeout = AbortSignal.timeout(this.#timeoutMs);
      const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
      try {
        const res = await this.#fetch(url, {
          method: req.method,
          headers,
          // A Uint8Array body is sent with Content-Length, never chunked.
          body: req.body && req.method !== "GET" && req.method !== "HEAD"
            ? body as Uint8Array<ArrayBuffer>
            : undefined,
          signal,
        });
        const bytes = req.method === "HEAD"
          ? new Uint8Array(0)
          : new Uint8Array(await res.arrayBuffer());
        const length = res.headers.get("content-length");
        if (req.method !== "HEAD" && length !== null && Number(length) !== bytes.length) {
          throw new Error(`body ended after ${bytes.length} of ${length} bytes`);
        }
        if (res.ok || req.accept?.includes(res.status)) return { res, body: bytes };
        const code = errorCode(bytes) ?? statusCode(res.status);
        const message = errorMessage(bytes);
        failure = new S3Error(
          res.status,
          code,
          req.key || this.bucket,
          `S3 ${what}: ${res.status} ${code}${message ? `: ${message}` : ""}`,
          attempt,
        );
        if (!isRetryableStatus(res.status, code)) throw failure;
        reason = `${res.status} ${code}`;
        const ra = res.headers.get("retry-after");
        if (ra !== null && /^\d+$/.test(ra)) retryAfter = Number(ra);
      } catch (e) {
        if (e instanceof S3Error) throw e;
        if (req.signal?.aborted) throw req.signal.reason;
        const timedOut = timeout.aborted;
        reason = timedOut ? `no answer in ${this.#timeoutMs} ms` : (e as Error).message;
        failure = new S3Error(
          0,
          timedOut ? "Timeout" : "NetworkError",
          req.key || this.bucket,
          `S3 ${what} at ${this.endpoint.origin}: ${reason}`,
          attempt,
          e,
        );
      }
      if (attempt >= this.#retry.maxAttempts) {
        throw new S3Error(
          failure.status,
          failure.code,
          failure.key,
          `${failure.message} (gave up after ${attempt} attempts)`,
          attempt,
          failure.cause,
        );
      }
      const delayMs = backoffMs(attempt, this.#retry, Math.random, retryAfter);
      this.#onRetry?.({ attempt, delayMs, reason });
      await this.#sleep(delayMs);
    }
  }

  /**
   * The object `key`, or the bytes `[start, end]` (inclusive) of it; `null`
   * if it does not exist. A ranged read checks the server answered with that range.
   */
  async getObject(
    key: string,
    range?: { start: number; end: number },
    signal?: AbortSignal,
  ): Promise<Uint8Array | null> {
    const headers: Record<string, string> = {};
    if (range) headers.range = `bytes=${range.start}-${range.end}`;
    const { res, body } = await this.#send({ method: "GET", key, headers, accept: [404], signal });
    if (res.status === 404) return null;
    if (range) {
      const want = range.end - range.start + 1;
      if (res.status !== 206 && !(res.status === 200 && range.start === 0)) {
        throw new S3Error(res.status, "BadRange", key, `S3 GET ${key}: range not honoured`, 1);
      }
      return res.status === 200 ? body.subarray(0, want) : body;
    }
    return body;
  }

  /** Size, ETag and modification time of `key`, or `null` if it does not exist. */
  async headObject(key: string): Promise<S3Object | null> {
    const { res } = await this.#send({ method: "HEAD", key, accept: [404] });
    if (res.status === 404) return null;
    return {
      key,
      size: Number(res.headers.get("content-length") ?? 0),
      lastModified: Date.parse(res.headers.get("last-modified") ?? "") || 0,
      etag: unquoteEtag(res.headers.get("etag")),
    };
  }

  /**
   * Store `body` as `key` (one PUT with a Content-Length). With
   * `ifNoneMatch`, returns `false` instead of overwriting an existing object
   * (where the server enforces it). With `retainUntil`, sets Object Lock
   * retention; S3 then wants a Content-MD5, which is sent.
   */
  async putObject(key: string, body: Uint8Array, options: PutOptions = {}): Promise<boolean> {
    const headers: Record<string, string> = {
      "content-type": options.contentType ?? "application/octet-stream",
    };
    if (options.ifNoneMatch) headers["if-none-match"] = "*";
    if (options.retainUntil) {
      headers["x-amz-object-lock-mode"] = options.lockMode ?? "GOVERNANCE";
      headers["x-amz-object-lock-retain-until-date"] = options.retainUntil.toISOString();
      headers["content-md5"] = createHash("md5").update(body).digest("base64");
    }
    const { res } = await this.#send({
      method: "PUT",
      key,
      headers,
      body,
      accept: options.ifNoneMatch ? [412] : [],
    });
    return res.status !== 412;
  }

  /** Delete `key` (no error if it does not exist). On a versioned bucket this adds a delete marker. */
  async deleteObject(key: string): Promise<void> {
    await this.#send({ method: "DELETE", key, accept: [404] });
  }

  /**
   * Delete up to 1000 keys in one request. Returns the keys the server
   * refused, with its error code (`AccessDenied` for an object under Object
   * Lock retention, for instance).
   */
  async deleteObjects(keys: string[]): Promise<{ key: string; code: string; message: string }[]> {
    if (keys.length === 0) return [];
    if (keys.length > 1000) throw new RangeError(`DeleteObjects takes at most 1000 keys`);
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Delete><Quiet>true</Quiet>` +
      keys.map((k) => `<Object><Key>${escapeXml(k)}</Key></Object>`).join("") + `</Delete>`;
    const body = new TextEncoder().encode(xml);
    const { body: out } = await this.#send({
      method: "POST",
      key: "",
      query: { delete: "" },
      headers: {
        "content-type": "application/xml",
        "content-md5": createHash("md5").update(body).digest("base64"),
      },
      body,
    });
    if (out.length === 0) return [];
    const root = parseXml(new TextDecoder().decode(out));
    return children(root, "Error").map((e) => ({
      key: childText(e, "Key") ?? "",
      code: childText(e, "Code") ?? "",
      message: childText(e, "Message") ?? "",
    }));
  }

  /** Every object whose key starts with `prefix`, in key order (ListObjectsV2, 1000 a page). */
  async *list(prefix: string, options: { startAfter?: string } = {}): AsyncGenerator<S3Object> {
    let token: string | undefined;
    for (;;) {
      const query: Record<string, string> = { "list-type": "2", prefix, "max-keys": "1000" };
      if (token) query["continuation-token"] = token;
      else if (options.startAfter) query["start-after"] = options.startAfter;
      const { body } = await this.#send({ method: "GET", key: "", query });
      const root = parseXml(new TextDecoder().decode(body));
      for (const c of children(root, "Contents")) {
        yield {
          key: childText(c, "Key") ?? "",
          size: Number(childText(c, "Size") ?? 0),
          lastModified: Date.parse(childText(c, "LastModified") ?? "") || 0,
          etag: unquoteEtag(childText(c, "ETag") ?? null),
        };
      }
      if (childText(root, "IsTruncated") !== "true") return;
      token = childText(root, "NextContinuationToken");
      if (!token) {
        throw new S3Error(0, "BadListing", prefix, "S3 listing truncated without token", 1);
      }
    }
  }

  /**
   * Every version and delete marker under `prefix` (ListObjectVersions), for
   * buckets with versioning (which Object Lock turns on).
   */
  async *listVersions(
    prefix: string,
  ): AsyncGenerator<{ key: string; versionId: string; deleteMarker: boolean }> {
    let keyMarker: string | undefined;
    let versionMarker: string | undefined;
    for (;;) {
      const query: Record<string, string> = { versions: "", prefix, "max-keys": "1000" };
      if (keyMarker !== undefined) query["key-marker"] = keyMarker;
      if (versionMarker !== undefined) query["version-id-marker"] = versionMarker;
      const { body } = await this.#send({ method: "GET", key: "", query });
      const root = parseXml(new TextDecoder().decode(body));
      for (const v of root.children) {
        if (v.name !== "Version" && v.name !== "DeleteMarker") continue;
        yield {
          key: childText(v, "Key") ?? "",
          versionId: childText(v, "VersionId") ?? "",
          deleteMarker: v.name === "DeleteMarker",
        };
      }
      if (childText(root, "IsTruncated") !== "true") return;
      keyMarker = childText(root, "NextKeyMarker");
      versionMarker = childText(root, "NextVersionIdMarker");
    }
  }

  /**
   * Delete one version of `key` for good. Refused (403 `AccessDenied`) while
   * Object Lock retains it, unless `bypassGovernance` and the retention mode
   * is GOVERNANCE and the user may bypass it.
   */
  async deleteVersion(
    key: string,
    versionId: string,
    options: { bypassGovernance?: boolean } = {},
  ): Promise<void> {
    const headers: Record<string, string> = {};
    if (options.bypassGovernance) headers["x-amz-bypass-governance-retention"] = "true";
    await this.#send({ method: "DELETE", key, query: { versionId }, headers, accept: [404] });
  }

  /** Whether the bucket exists and these credentials can reach it. */
  async bucketExists(): Promise<boolean> {
    const { res } = await this.#send({ method: "HEAD", key: "", accept: [404] });
    return res.status !== 404;
  }

  /**
   * Create the bucket. With `objectLock`, the bucket is created with Object
   * Lock enabled (and so versioning, which S3 requires for it). An existing
   * bucket owned by us is not an error.
   */
  async createBucket(options: { objectLock?: boolean } = {}): Promise<void> {
    const headers: Record<string, string> = {};
    if (options.objectLock) headers["x-amz-bucket-object-lock-enabled"] = "true";
    const { res, body } = await this.#send({ method: "PUT", key: "", headers, accept: [409] });
    if (res.status === 409 && errorCode(body) !== "BucketAlreadyOwnedByYou") {
      throw new S3Error(
        409,
        errorCode(body) ?? "Conflict",
        this.bucket,
        `S3 bucket ${this.bucket} exists and is not ours`,
        1,
      );
    }
  }

  /** Delete the (empty) bucket. */
  async deleteBucket(): Promise<void> {
    await this.#send({ method: "DELETE", key: "", accept: [404] });
  }

  /** Whether Object Lock is enabled on the bucket. */
  async objectLockEnabled(): Promise<boolean> {
    const { res, body } = await this.#send({
      method: "GET",
      key: "",
      query: { "object-lock": "" },
      accept: [404, 400],
    });
    if (!res.ok) return false;
    const root = parseXml(new TextDecoder().decode(body));
    return childText(root, "ObjectLockEnabled") === "Enabled";
  }

  /** The Object Lock retention of `key`, or `null` if it has none. */
  async getRetention(key: string): Promise<Retention | null> {
    const { res, body } = await this.#send({
      method: "GET",
      key,
      query: { retention: "" },
      accept: [404, 400],
    });
    if (!res.ok) return null;
    const root = parseXml(new TextDecoder().decode(body));
    const mode = childText(root, "Mode");
    const until = Date.parse(childText(root, "RetainUntilDate") ?? "");
    if ((mode !== "GOVERNANCE" && mode !== "COMPLIANCE") || isNaN(until)) return null;
    return { mode, until: new Date(until) };
  }

  /** Set (or extend) the Object Lock retention of `key`. */
  async putRetention(key: string, retention: Retention): Promise<void> {
    const xml = `<?xml version="1.0" encoding="UTF-8"?><Retention><Mode>${retention.mode}</Mode>` +
      `<RetainUntilDate>${retention.until.toISOString()}</RetainUntilDate></Retention>`;
    const body = new TextEncoder().encode(xml);
    await this.#send({
      method: "PUT",
      key,
      query: { retention: "" },
      headers: {
        "content-type": "application/xml",
        "content-md5": createHash("md5").update(body).digest("base64"),
      },
      body,
    });
  }
}

function errorCode(body: Uint8Array): string | undefined {
  if (body.length === 0 || body.length > 64 * 1024) return undefined;
  try {
    const root = parseXml(new TextDecoder().decode(body));
    return root.name === "Error" ? childText(root, "Code") : undefined;
  } catch {
    return undefined;
  }
}

function errorMessage(body: Uint8Array): string | undefined {
  if (body.length === 0 || body.length > 64 * 1024) return undefined;
  try {
    const root = parseXml(new TextDecoder().decode(body));
    return root.name === "Error" ? childText(root, "Message") || undefined : undefined;
  } catch {
    return undefined;
  }
}

function statusCode(status: number): string {
  return ({
    403: "AccessDenied",
    404: "NotFound",
    412: "PreconditionFailed",
    503: "ServiceUnavailable",
  } as Record<number, string>)[status] ??
    `HTTP${status}`;
}

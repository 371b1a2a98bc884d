/**
 * AWS Signature Version 4 for S3 requests (header signing). Pure: no I/O, no
 * clock; the caller passes the time. Rules: the AWS "Signature Version 4
 * signing process" (canonical request, string to sign, derived signing key).
 *
 * @module
 */

import { createHash, createHmac } from "node:crypto";

/** Access key pair (and an optional session token) used to sign. */
export interface Credentials {
  /** `AWS_ACCESS_KEY_ID`. */
  accessKeyId: string;
  /** `AWS_SECRET_ACCESS_KEY`. */
  secretAccessKey: string;
  /** `AWS_SESSION_TOKEN`, for temporary credentials. */
  sessionToken?: string;
}

/** One request to sign. */
export interface SignInput {
  /** HTTP method, upper case. */
  method: string;
  /** The full request URL (path already percent-encoded by {@linkcode encodePath}). */
  url: URL;
  /** Request headers (lower- or mixed-case names); `host` is added from the URL. */
  headers: Record<string, string>;
  /** Hex SHA-256 of the body, or `UNSIGNED-PAYLOAD`. */
  payloadHash: string;
  /** Signing region (`us-east-1`, or what the server expects; Ceph accepts any). */
  region: string;
  /** Signing time. */
  time: Date;
  /** Service name. @default "s3" */
  service?: string;
}

/** The hex SHA-256 of the empty body. */
export const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

const enc = new TextEncoder();

/** RFC 3986 percent-encoding as SigV4 wants it: everything but `A-Za-z0-9-._~`. */
export function uriEncode(s: string, keepSlash = false): string {
  let out = "";
  for (const byte of enc.encode(s)) {
    const c = String.fromCharCode(byte);
    if (/[A-Za-z0-9\-._~]/.test(c) || (keepSlash && c === "/")) out += c;
    else out += "%" + byte.toString(16).toUpperCase().padStart(2, "0");
  }
  return out;
}

/** Percent-encode an object path (`/bucket/key`) once, keeping the slashes. */
export function encodePath(path: string): string {
  return uriEncode(path, true);
}

/** `20261130T095500Z` and `20261130` of `time`. */
export function amzDate(time: Date): { dateTime: string; date: string } {
  const dateTime = time.toISOString().replace(/[-:]/g, "").replace(/\.\d{3}/, "");
  return { dateTime, date: dateTime.slice(0, 8) };
}

function hmac(key: Uint8Array | string, data: string): Uint8Array {
  return new Uint8Array(createHmac("sha256", key).update(data).digest());
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** Hex SHA-256 of a string or bytes (synchronous; bodies are hashed by the caller). */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** The canonical query string: keys and values encoded, sorted by key then value. */
export function canonicalQuery(params: URLSearchParams): string {
  const pairs: [string, string][] = [];
  for (const [k, v] of params) pairs.push([uriEncode(k), uriEncode(v)]);
  pairs.sort((
    a,
    b,
  ) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return pairs.map(([k, v]) => `${k}=${v}`).join("&");
}

/**
 * The canonical request of `input` and the signed header list. Exposed for
 * tests against the published AWS examples.
 */
export function canonicalRequest(
  input: Pick<SignInput, "method" | "url" | "headers" | "payloadHash">,
): { request: string; signedHeaders: string } {
  const headers = new Map<string, string>();
  for (const [k, v] of Object.entries(input.headers)) {
    headers.set(k.toLowerCase(), v.trim().replace(/\s+/g, " "));
  }
  headers.set("host", input.url.host);
  const names = [...headers.keys()].sort();
  const signedHeaders = names.join(";");
  const request = [
    input.method,
    input.url.pathname || "/",
    canonicalQuery(input.url.searchParams),
    names.map((n) => `${n}:${headers.get(n)}\n`).join(""),
    signedHeaders,
    input.payloadHash,
  ].join("\n");
  return { request, signedHeaders };
}

/** The derived signing key of a day, region and service. */
export function signingKey(
  secret: string,
  date: string,
  region: string,
  service: string,
): Uint8Array {
  const kDate = hmac("AWS4" + secret, date);
  const kRegion = hmac(kDate, region);
  const kService = hmac(kRegion, service);
  return hmac(kService, "aws4_request");
}

/**
 * Sign a request: returns the headers to send (the caller's plus `host`-free
 * `x-amz-date`, `x-amz-content-sha256`, `x-amz-security-token` and
 * `authorization`).
 *
 * @example Sign a GET of one object
 * ```ts
 * import { sign } from "./sigv4.ts";
 * const headers = sign({
 *   method: "GET",
 *   url: new URL("http://127.0.0.1:7480/bucket/key"),
 *   headers: {},
 *   payloadHash: "UNSIGNED-PAYLOAD",
 *   region: "us-east-1",
 *   time: new Date(),
 * }, { accessKeyId: "AK", secretAccessKey: "SK" });
 * console.log(headers.authorization.startsWith("AWS4-HMAC-SHA256"));
 * ```
 */
export function sign(input: SignInput, credentials: Credentials): Record<string, string> {
  const service = input.service ?? "s3";
  const { dateTime, date } = amzDate(input.time);
  const headers: Record<string, string> = {
    ...input.headers,
    "x-amz-date": dateTime,
    "x-amz-content-sha256": input.payloadHash,
  };
  if (credentials.sessionToken) headers["x-amz-security-token"] = credentials.sessionToken;
  const { request, signedHeaders } = canonicalRequest({ ...input, headers });
  const scope = `${date}/${input.region}/${service}/aws4_request`;
  const stringToSign = ["AWS4-HMAC-SHA256", dateTime, scope, sha256Hex(request)].join("\n");
  const key = signingKey(credentials.secretAccessKey, date, input.region, service);
  const signature = hex(hmac(key, stringToSign));
  headers.authorization = `AWS4-HMAC-SHA256 Credential=${credentials.accessKeyId}/${scope}, ` +
    `SignedHeaders=${signedHeaders}, Signature=${signature}`;
  return headers;
}

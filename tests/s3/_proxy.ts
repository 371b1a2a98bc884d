/**
 * A fault-injecting HTTP proxy in front of the real S3 server: it forwards
 * every request, except those its `fault` function answers itself (503
 * SlowDown, 500, 429) or cuts (the connection is dropped before an answer).
 * Throttling and server errors are then real HTTP seen by the real client,
 * with the real server behind.
 *
 * @module
 */

import { type Credentials, sign } from "../../lib/backup/s3/sigv4.ts";

/** What the proxy does with one request ("drop": the connection breaks mid-answer). */
export type Fault = "pass" | "slowdown" | "error500" | "throttle429" | "drop";

/** A running proxy; `await using` stops it. */
export interface Proxy extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`. */
  endpoint: string;
  /** Requests seen, and how each was answered. */
  log: { method: string; path: string; fault: Fault }[];
}

const bodies: Record<Exclude<Fault, "pass" | "drop">, [number, string]> = {
  slowdown: [503, "SlowDown"],
  error500: [500, "InternalError"],
  throttle429: [429, "TooManyRequests"],
};

/**
 * Forward `req` to `target`, signed again for the target's host: the client signed the proxy's
 * host, and `fetch` sends the Host of the URL it is given. The payload hash the client computed
 * is kept, so the server still checks the body it receives.
 */
async function forward(
  req: Request,
  url: URL,
  target: URL,
  credentials: Credentials,
): Promise<Response> {
  const body = req.body ? new Uint8Array(await req.arrayBuffer()) : undefined;
  const headers: Record<string, string> = {};
  req.headers.forEach((v, k) => {
    if (
      ![
        "authorization",
        "host",
        "x-amz-date",
        "content-length",
        "accept-encoding",
        "accept",
        "user-agent",
        "accept-language",
      ].includes(k)
    ) {
      headers[k] = v;
    }
  });
  const upstream = new URL(url.pathname + url.search, target);
  const payloadHash = headers["x-amz-content-sha256"];
  delete headers["x-amz-content-sha256"];
  const region =
    /Credential=[^/]+\/\d+\/([^/]+)\//.exec(req.headers.get("authorization") ?? "")?.[1] ??
      "us-east-1";
  const signed = sign({
    method: req.method,
    url: upstream,
    headers,
    payloadHash,
    region,
    time: new Date(),
  }, credentials);
  const res = await fetch(upstream, { method: req.method, headers: signed, body });
  const out = new Uint8Array(await res.arrayBuffer());
  const empty = req.method === "HEAD" || res.status === 204 || res.status === 304;
  return new Response(empty ? null : out, {
    status: res.status,
    headers: res.headers,
  });
}

/** Start a proxy to `target` that asks `fault` what to do with each request. */
export function startProxy(
  target: string,
  credentials: Credentials,
  fault: (req: Request, n: number) => Fault,
): Proxy {
  const log: Proxy["log"] = [];
  let n = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const what = fault(req, n++);
    log.push({ method: req.method, path: url.pathname, fault: what });
    if (what === "drop") {
      // The connection breaks in the middle of the answer: headers announce 1 MiB, a few
      // bytes come, then the stream fails and the server aborts the connection.
      await req.body?.cancel();
      const body = new ReadableStream<Uint8Array>({
        start(c): void {
          c.enqueue(new Uint8Array(100));
          c.close(); // short of the announced length: the server must cut the connection
        },
      });
      // Status 500, so a HEAD (whose body is never read) sees a failure too, as it would
      // when a real connection breaks before the answer.
      return new Response(body, { status: 500, headers: { "content-length": String(1 << 20) } });
    }
    if (what !== "pass") {
      await req.body?.cancel();
      const [status, code] = bodies[what];
      return new Response(`<?xml version="1.0"?><Error><Code>${code}</Code></Error>`, { status });
    }
    return await forward(req, url, new URL(target), credentials);
  });
  const addr = server.addr as Deno.NetAddr;
  return {
    endpoint: `http://127.0.0.1:${addr.port}`,
    log,
    async [Symbol.asyncDispose](): Promise<void> {
      await server.shutdown();
    },
  };
}

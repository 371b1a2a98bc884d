/**
 * When an S3 request is retried, and after how long. Pure: the client passes
 * the attempt number and a random source.
 *
 * @module
 */

/** Retry settings of the S3 client. */
export interface RetryPolicy {
  /** Attempts in all, the first one included. @default 8 */
  maxAttempts: number;
  /** Backoff before the second attempt, in milliseconds. @default 200 */
  baseDelayMs: number;
  /** Cap of one backoff, in milliseconds. @default 15000 */
  maxDelayMs: number;
}

/** The defaults: 8 attempts spread over about a minute at worst. */
export const DEFAULT_RETRY: RetryPolicy = { maxAttempts: 8, baseDelayMs: 200, maxDelayMs: 15_000 };

/** S3 error codes that mean "try again later" whatever the HTTP status. */
const RETRYABLE_CODES = new Set([
  "SlowDown",
  "RequestTimeout",
  "RequestTimeTooSkewed",
  "InternalError",
  "ServiceUnavailable",
  "Throttling",
  "ThrottlingException",
  "TooManyRequests",
]);

/**
 * Whether a response with `status` and S3 error `code` is worth retrying:
 * every 5xx, 429, and the throttling/timeout codes (some servers send
 * `SlowDown` with 503, others with 400).
 */
export function isRetryableStatus(status: number, code?: string): boolean {
  return status >= 500 || status === 429 || (code !== undefined && RETRYABLE_CODES.has(code));
}

/**
 * The delay before attempt `attempt + 1` (attempt counts from 1): "full
 * jitter", a uniform draw in [0, min(cap, base·2^(attempt−1))], so many
 * clients throttled at once do not retry in step. A server's `Retry-After`
 * (seconds) is honoured as a floor, within the cap.
 *
 * @example The ceiling grows, the draw is random
 * ```ts
 * import { backoffMs, DEFAULT_RETRY } from "./retry.ts";
 * console.log(backoffMs(3, DEFAULT_RETRY, () => 1)); // 800: the ceiling of the third retry
 * ```
 */
export function backoffMs(
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
  retryAfterSeconds?: number,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** (attempt - 1));
  const jittered = Math.floor(random() * ceiling);
  if (retryAfterSeconds !== undefined && Number.isFinite(retryAfterSeconds)) {
    return Math.min(policy.maxDelayMs, Math.max(jittered, retryAfterSeconds * 1000));
  }
  return jittered;
}

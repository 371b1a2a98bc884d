/**
 * The S3 backend: a repository under `s3://bucket/prefix`, one object per
 * name (one per chunk: at 4 MiB chunks a PUT is already efficient, and
 * garbage collection is a listing and batch deletes, with no repacking).
 * A PUT replaces an object whole, so there are no temporary objects. With
 * Object Lock days set, every object is stored with that retention.
 *
 * @module
 */

import { CorruptError, RepoError } from "../errors.ts";
import { S3Client, type S3ClientOptions, S3Error } from "../s3/client.ts";
import { parseS3Url, type S3Settings, s3SettingsFromEnv } from "../s3/config.ts";
import type { Backend, StoredObject } from "./backend.ts";

/** Options of {@linkcode S3Backend.connect}. */
export interface S3BackendOptions {
  /** Endpoint, region and keys. @default s3SettingsFromEnv() */
  settings?: S3Settings;
  /** Requests in flight at once for chunk transfers. @default $BLKSNAP_S3_PARALLELISM or 8 */
  parallelism?: number;
  /** Client options (retries, timeouts; tests inject a `fetch`). */
  client?: Partial<S3ClientOptions>;
}

/**
 * A repository prefix in a bucket as a {@linkcode Backend}.
 *
 * @example
 * ```ts ignore
 * import { S3Backend } from "./s3.ts";
 * const b = S3Backend.connect("s3://backups/db1");
 * for await (const o of b.list("backups/")) console.log(o.name, o.size);
 * ```
 */
export class S3Backend implements Backend {
  /** Always `"s3"`. */
  readonly kind = "s3";
  /** `s3://bucket/prefix`. */
  readonly location: string;
  /** Transfers in flight at once. */
  readonly parallelism: number;
  /** The client of the bucket. */
  readonly client: S3Client;
  /** Key prefix, "" or ending in "/". */
  readonly prefix: string;
  /** Object Lock retention to set on each new object, in days; 0 for none. */
  objectLockDays = 0;

  private constructor(location: string, client: S3Client, prefix: string, parallelism: number) {
    this.location = location;
    this.client = client;
    this.prefix = prefix;
    this.parallelism = parallelism;
  }

  /** A backend for `url` (`s3://bucket/prefix`), with settings from the environment by default. */
  static connect(url: string, options: S3BackendOptions = {}): S3Backend {
    const { bucket, prefix } = parseS3Url(url);
    const settings = options.settings ?? s3SettingsFromEnv();
    const attempts = envNumber("BLKSNAP_S3_MAX_ATTEMPTS");
    const client = new S3Client({
      ...settings,
      bucket,
      ...(attempts ? { retry: { maxAttempts: attempts } } : {}),
      ...options.client,
    });
    const parallelism = options.parallelism ?? envNumber("BLKSNAP_S3_PARALLELISM") ?? 8;
    const location = `s3://${bucket}${prefix ? "/" + prefix : ""}`;
    return new S3Backend(location, client, prefix ? prefix + "/" : "", parallelism);
  }

  #key(name: string): string {
    return this.prefix + name;
  }

  /** `s3://bucket/prefix/name`. */
  display(name: string): string {
    return `${this.location}/${name}`;
  }

  #error(op: string, name: string, e: unknown): RepoError {
    if (e instanceof RepoError) return e;
    const detail = e instanceof Error ? e.message : String(e);
    return new RepoError("IO", `${op} ${this.display(name)} failed: ${detail}`, {
      path: this.display(name),
      cause: e,
    });
  }

  /**
   * GET the object, asking for at most `max + 1` bytes (a range), so an
   * oversized object is refused without downloading it.
   */
  async get(name: string, max: number): Promise<Uint8Array | null> {
    let bytes: Uint8Array | null;
    try {
      bytes = await this.client.getObject(this.#key(name), { start: 0, end: max });
    } catch (e) {
      // An empty object has no byte 0: 416 for the range.
      if (e instanceof S3Error && e.status === 416) return new Uint8Array(0);
      throw this.#error("read", name, e);
    }
    if (bytes !== null && bytes.length > max) {
      throw new CorruptError(this.display(name), `more than ${max} bytes`);
    }
    return bytes;
  }

  /** One PUT with a Content-Length (and Object Lock retention when set). */
  async put(name: string, data: Uint8Array): Promise<void> {
    try {
      await this.client.putObject(this.#key(name), data, {
        retainUntil: this.objectLockDays > 0
          ? new Date(Date.now() + this.objectLockDays * 86_400_000)
          : undefined,
      });
    } catch (e) {
      throw this.#error("write", name, e);
    }
  }

  /** DELETE (on a versioned bucket: a delete marker; retained versions stay). */
  async delete(name: string): Promise<void> {
    try {
      await this.client.deleteObject(this.#key(name));
    } catch (e) {
      throw this.#error("remove", name, e);
    }
  }

  /** DeleteObjects, 1000 names a request. */
  async deleteMany(names: string[]): Promise<{ name: string; reason: string }[]> {
    const refused: { name: string; reason: string }[] = [];
    for (let i = 0; i < names.length; i += 1000) {
      const batch = names.slice(i, i + 1000);
      try {
        for (const e of await this.client.deleteObjects(batch.map((n) => this.#key(n)))) {
          refused.push({ name: e.key.slice(this.prefix.length), reason: `${e.code} ${e.message}` });
        }
      } catch (e) {
        throw this.#error("remove", batch[0], e);
      }
    }
    return refused;
  }

  /** ListObjectsV2 under the prefix, with sizes and times. */
  async *list(prefix: string): AsyncIterable<StoredObject> {
    try {
      for await (const o of this.client.list(this.#key(prefix))) {
        yield {
          name: o.key.slice(this.prefix.length),
          size: o.size,
          mtimeMs: o.lastModified,
          etag: o.etag,
        };
      }
    } catch (e) {
      throw this.#error("list", prefix, e);
    }
  }

  /** HEAD. */
  async stat(name: string): Promise<{ size: number; mtimeMs: number } | null> {
    try {
      const o = await this.client.headObject(this.#key(name));
      return o && { size: o.size, mtimeMs: o.lastModified };
    } catch (e) {
      throw this.#error("stat", name, e);
    }
  }

  /** Nothing to do: a PUT is durable when it returns. */
  flush(): Promise<void> {
    return Promise.resolve();
  }
}

/** A positive integer from environment variable `name`, or `undefined`. */
function envNumber(name: string): number | undefined {
  let v: string | undefined;
  try {
    v = Deno.env.get(name);
  } catch {
    return undefined;
  }
  return v && /^[1-9]\d*$/.test(v) ? Number(v) : undefined;
}

/**
 * Where an `s3://bucket/prefix` repository lives and how to sign for it:
 * the endpoint, region and credentials, from the usual `AWS_*` variables or
 * the AWS shared config and credentials files, as the AWS CLI reads them.
 *
 * @module
 */

import { join } from "node:path";
import type { Credentials } from "./sigv4.ts";

/** A parsed `s3://bucket/prefix` name. */
export interface S3Location {
  /** Bucket name. */
  bucket: string;
  /** Key prefix without leading or trailing slash ("" for the bucket root). */
  prefix: string;
}

/** Everything needed to reach a bucket. */
export interface S3Settings {
  /** `http(s)://host[:port]`. */
  endpoint: string;
  /** Signing region. */
  region: string;
  /** Keys. */
  credentials: Credentials;
}

/** True if `repo` names an S3 repository (`s3://...`). */
export function isS3Url(repo: string): boolean {
  return repo.startsWith("s3://");
}

/**
 * Parse `s3://bucket/prefix`. Bucket names follow the S3 rules (3-63
 * characters of `a-z0-9.-`); the prefix may be empty or have several parts.
 *
 * @example
 * ```ts
 * import { parseS3Url } from "./config.ts";
 * console.log(parseS3Url("s3://backups/hosts/db1")); // { bucket: "backups", prefix: "hosts/db1" }
 * ```
 */
export function parseS3Url(repo: string): S3Location {
  const m = /^s3:\/\/([^/]+)(?:\/(.*))?$/.exec(repo);
  if (!m) throw new TypeError(`Not an S3 repository name: ${repo} (want s3://bucket/prefix)`);
  const bucket = m[1];
  if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(bucket)) {
    throw new TypeError(
      `Bad bucket name ${JSON.stringify(bucket)}: 3 to 63 characters of a-z, 0-9, "." and "-"`,
    );
  }
  const prefix = (m[2] ?? "").replace(/^\/+|\/+$/g, "");
  if (prefix.split("/").some((p) => p === "" || p === "." || p === "..") && prefix !== "") {
    throw new TypeError(`Bad prefix in ${repo}: empty, "." or ".." parts`);
  }
  return { bucket, prefix };
}

/** Parse an INI file of the AWS shape: `[section]` then `key = value` lines. */
export function parseIni(text: string): Map<string, Map<string, string>> {
  const out = new Map<string, Map<string, string>>();
  let section: Map<string, string> | undefined;
  for (const raw of text.split(/\r?\n/)) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const s = /^\[\s*(.+?)\s*\]$/.exec(line);
    if (s) {
      section = new Map();
      out.set(s[1], section);
      continue;
    }
    const kv = /^([^=]+?)\s*=\s*(.*)$/.exec(line);
    if (kv && section) section.set(kv[1].toLowerCase(), kv[2]);
  }
  return out;
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return null;
  }
}

/**
 * The endpoint, region and credentials to use, first found wins:
 * - endpoint: `BLKSNAP_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`, the profile's
 *   `endpoint_url` in the config file, else AWS (`https://s3.<region>.amazonaws.com`);
 * - region: `AWS_REGION`, `AWS_DEFAULT_REGION`, the profile's `region`, else `us-east-1`;
 * - keys: `AWS_ACCESS_KEY_ID` + `AWS_SECRET_ACCESS_KEY` (+ `AWS_SESSION_TOKEN`), else the
 *   profile's `aws_access_key_id`/`aws_secret_access_key` in the credentials file.
 * The profile is `AWS_PROFILE` (default `default`); the files are `AWS_CONFIG_FILE`
 * (`~/.aws/config`, section `[profile NAME]` or `[default]`) and
 * `AWS_SHARED_CREDENTIALS_FILE` (`~/.aws/credentials`, section `[NAME]`).
 *
 * @example
 * ```ts ignore
 * import { s3SettingsFromEnv } from "./config.ts";
 * const { endpoint, region } = s3SettingsFromEnv();
 * console.log(endpoint, region);
 * ```
 */
export function s3SettingsFromEnv(
  env: (name: string) => string | undefined = (n) => {
    try {
      return Deno.env.get(n);
    } catch {
      return undefined;
    }
  },
): S3Settings {
  const home = env("HOME") ?? "/root";
  const profile = env("AWS_PROFILE") ?? "default";
  const config = parseIni(readText(env("AWS_CONFIG_FILE") ?? join(home, ".aws/config")) ?? "");
  const creds = parseIni(
    readText(env("AWS_SHARED_CREDENTIALS_FILE") ?? join(home, ".aws/credentials")) ?? "",
  );
  const prof = config.get(profile === "default" ? "default" : `profile ${profile}`) ??
    config.get(profile) ?? new Map<string, string>();
  const cred = creds.get(profile) ?? new Map<string, string>();
  const region = env("AWS_REGION") ?? env("AWS_DEFAULT_REGION") ?? prof.get("region") ??
    "us-east-1";
  const endpoint = env("BLKSNAP_S3_ENDPOINT") ?? env("AWS_ENDPOINT_URL_S3") ??
    env("AWS_ENDPOINT_URL") ?? prof.get("endpoint_url") ?? `https://s3.${region}.amazonaws.com`;
  const accessKeyId = env("AWS_ACCESS_KEY_ID") ?? cred.get("aws_access_key_id") ??
    prof.get("aws_access_key_id");
  const secretAccessKey = env("AWS_SECRET_ACCESS_KEY") ?? cred.get("aws_secret_access_key") ??
    prof.get("aws_secret_access_key");
  const sessionToken = env("AWS_SESSION_TOKEN") ?? cred.get("aws_session_token");
  if (!accessKeyId || !secretAccessKey) {
    throw new TypeError(
      "No S3 credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or put them in " +
        `~/.aws/credentials under [${profile}]`,
    );
  }
  return {
    endpoint,
    region,
    credentials: { accessKeyId, secretAccessKey, ...(sessionToken ? { sessionToken } : {}) },
  };
}

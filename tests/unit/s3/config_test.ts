import assert from "node:assert/strict";
import { isS3Url, parseIni, parseS3Url, s3SettingsFromEnv } from "../../../lib/backup/s3/config.ts";

Deno.test("s3 config: s3://bucket/prefix names", () => {
  assert.ok(isS3Url("s3://b/x"));
  assert.ok(!isS3Url("/srv/repo"));
  assert.deepEqual(parseS3Url("s3://backups"), { bucket: "backups", prefix: "" });
  assert.deepEqual(parseS3Url("s3://backups/"), { bucket: "backups", prefix: "" });
  assert.deepEqual(parseS3Url("s3://my.bkt-1/a/b/"), { bucket: "my.bkt-1", prefix: "a/b" });
  assert.throws(() => parseS3Url("s3://UPPER/x"), /Bad bucket name/);
  assert.throws(() => parseS3Url("s3://ab"), /Bad bucket name/);
  assert.throws(() => parseS3Url("s3://bkt/a//b"), /Bad prefix/);
  assert.throws(() => parseS3Url("s3://bkt/a/../b"), /Bad prefix/);
  assert.throws(() => parseS3Url("http://bkt/a"), /Not an S3 repository/);
});

Deno.test("s3 config: variables win over the AWS files, the profile picks the section", () => {
  const dir = Deno.makeTempDirSync();
  try {
    Deno.writeTextFileSync(
      `${dir}/config`,
      "[default]\nregion = eu-west-1\n[profile ceph]\nregion = default\nendpoint_url = http://127.0.0.1:7480\n",
    );
    Deno.writeTextFileSync(
      `${dir}/credentials`,
      "# comment\n[ceph]\naws_access_key_id = AKC\naws_secret_access_key = SKC\n",
    );
    const files = {
      AWS_CONFIG_FILE: `${dir}/config`,
      AWS_SHARED_CREDENTIALS_FILE: `${dir}/credentials`,
    };
    const fromProfile = s3SettingsFromEnv((n) =>
      ({ ...files, AWS_PROFILE: "ceph" } as Record<string, string>)[n]
    );
    assert.deepEqual(fromProfile, {
      endpoint: "http://127.0.0.1:7480",
      region: "default",
      credentials: { accessKeyId: "AKC", secretAccessKey: "SKC" },
    });
    const fromEnv = s3SettingsFromEnv((n) =>
      ({
        ...files,
        AWS_PROFILE: "ceph",
        BLKSNAP_S3_ENDPOINT: "https://s3.example:9000",
        AWS_REGION: "r1",
        AWS_ACCESS_KEY_ID: "AK",
        AWS_SECRET_ACCESS_KEY: "SK",
        AWS_SESSION_TOKEN: "T",
      } as Record<string, string>)[n]
    );
    assert.deepEqual(fromEnv, {
      endpoint: "https://s3.example:9000",
      region: "r1",
      credentials: { accessKeyId: "AK", secretAccessKey: "SK", sessionToken: "T" },
    });
    assert.throws(
      () => s3SettingsFromEnv((n) => ({ ...files } as Record<string, string>)[n]),
      /No S3 credentials/,
    );
    assert.equal(parseIni("[a]\nK = v = w\n").get("a")?.get("k"), "v = w");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

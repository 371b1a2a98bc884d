// SigV4 against the worked examples of the AWS S3 documentation
// ("Signature Calculations for the Authorization Header: Transferring Payload
// in a Single Chunk"): same keys, time and requests, same signatures.
import assert from "node:assert/strict";
import {
  canonicalQuery,
  EMPTY_SHA256,
  sha256Hex,
  sign,
  uriEncode,
} from "../../../lib/backup/s3/sigv4.ts";

const credentials = {
  accessKeyId: "AKIAIOSFODNN7EXAMPLE",
  secretAccessKey: "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
};
const time = new Date(Date.UTC(2013, 4, 24));

function signature(h: Record<string, string>): string {
  return /Signature=([0-9a-f]{64})/.exec(h.authorization)![1];
}

Deno.test("sigv4: GET object with a range (AWS example)", () => {
  const h = sign({
    method: "GET",
    url: new URL("https://examplebucket.s3.amazonaws.com/test.txt"),
    headers: { range: "bytes=0-9" },
    payloadHash: EMPTY_SHA256,
    region: "us-east-1",
    time,
  }, credentials);
  assert.match(h.authorization, /SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,/);
  assert.equal(signature(h), "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
});

Deno.test("sigv4: PUT object with a signed payload (AWS example)", () => {
  const body = "Welcome to Amazon S3.";
  const h = sign({
    method: "PUT",
    url: new URL("https://examplebucket.s3.amazonaws.com/" + uriEncode("test$file.text")),
    headers: { date: "Fri, 24 May 2013 00:00:00 GMT", "x-amz-storage-class": "REDUCED_REDUNDANCY" },
    payloadHash: sha256Hex(body),
    region: "us-east-1",
    time,
  }, credentials);
  assert.equal(sha256Hex(body), "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072");
  assert.equal(signature(h), "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
});

Deno.test("sigv4: GET bucket with a query (AWS example)", () => {
  const url = new URL("https://examplebucket.s3.amazonaws.com/");
  url.searchParams.set("max-keys", "2");
  url.searchParams.set("prefix", "J");
  const h = sign({
    method: "GET",
    url,
    headers: {},
    payloadHash: EMPTY_SHA256,
    region: "us-east-1",
    time,
  }, credentials);
  assert.equal(signature(h), "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
});

Deno.test("sigv4: encoding of keys and queries", () => {
  assert.equal(uriEncode("a b/c~d*é", true), "a%20b/c~d%2A%C3%A9");
  assert.equal(uriEncode("a/b"), "a%2Fb");
  const q = new URLSearchParams([["prefix", "x y"], ["delete", ""], ["b", "2"], ["b", "1"]]);
  assert.equal(canonicalQuery(q), "b=1&b=2&delete=&prefix=x%20y");
});

Deno.test("sigv4: a session token is sent and signed", () => {
  const h = sign({
    method: "GET",
    url: new URL("http://127.0.0.1:7480/b/k"),
    headers: {},
    payloadHash: EMPTY_SHA256,
    region: "us-east-1",
    time,
  }, { ...credentials, sessionToken: "TOKEN" });
  assert.equal(h["x-amz-security-token"], "TOKEN");
  assert.match(h.authorization, /x-amz-security-token/);
});

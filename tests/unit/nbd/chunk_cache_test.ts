import assert from "node:assert/strict";
import { ChunkCache } from "../../../lib/nbd/chunk_cache.ts";

Deno.test("ChunkCache evicts the least recently used value and counts hits, misses, evictions", async () => {
  const cache = new ChunkCache<number>(2);
  const loads: string[] = [];
  const load = (k: string) => () => {
    loads.push(k);
    return Promise.resolve(k.charCodeAt(0));
  };
  await cache.get("a", load("a"));
  await cache.get("b", load("b"));
  await cache.get("a", load("a")); // a is now the most recent
  await cache.get("c", load("c")); // evicts b
  assert.ok(cache.has("a") && cache.has("c") && !cache.has("b"));
  await cache.get("b", load("b"));
  assert.deepEqual(loads, ["a", "b", "c", "b"]);
  assert.deepEqual(cache.stats, { hits: 1, misses: 4, evictions: 2 });
  assert.equal(cache.size, 2);
});

Deno.test("ChunkCache joins concurrent loads of one key into one load", async () => {
  const cache = new ChunkCache<string>(4);
  let calls = 0;
  let release!: (v: string) => void;
  const slow = () => {
    calls++;
    return new Promise<string>((r) => (release = r));
  };
  const all = Promise.all([cache.get("k", slow), cache.get("k", slow), cache.get("k", slow)]);
  release("v");
  assert.deepEqual(await all, ["v", "v", "v"]);
  assert.equal(calls, 1);
});

Deno.test("ChunkCache does not keep a failed load: the next get loads again", async () => {
  const cache = new ChunkCache<string>(4);
  await assert.rejects(cache.get("k", () => Promise.reject(new Error("bad chunk"))), /bad chunk/);
  assert.equal(cache.has("k"), false);
  assert.equal(await cache.get("k", () => Promise.resolve("ok")), "ok");
});

// The encryption layer: the AEAD against RFC 8439's test vector in both implementations,
// libcrypto and node:crypto giving the same bytes, key slots, and sealed chunks and objects
// refusing every alteration, name swap and wrong key.
import assert from "node:assert/strict";
import { createCipheriv } from "node:crypto";
import { open, seal } from "../../../lib/backup/crypto/aead.ts";
import {
  chunkId,
  deriveKeys,
  encodeSlot,
  makeSlot,
  newMaster,
  openSlot,
  parseSlot,
} from "../../../lib/backup/crypto/keys.ts";
import { openLibcrypto } from "../../../lib/backup/crypto/libcrypto.ts";
import { openChunk, openObject, sealChunk, sealObject } from "../../../lib/backup/crypto/sealed.ts";

const hex = (s: string) => Uint8Array.from(s.match(/../g)!.map((h) => parseInt(h, 16)));
const toHex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
const FAST = { N: 1 << 10, r: 8, p: 1 };

Deno.test("aead: RFC 8439 2.8.2 test vector, libcrypto and node:crypto alike", () => {
  const key = hex("808182838485868788898a8b8c8d8e8f909192939495969798999a9b9c9d9e9f");
  const nonce = hex("070000004041424344454647");
  const aad = hex("50515253c0c1c2c3c4c5c6c7");
  const plain = new TextEncoder().encode(
    "Ladies and Gentlemen of the class of '99: If I could offer you only one tip for the future, sunscreen would be it.",
  );
  const sealed = seal(key, nonce, plain, aad);
  assert.equal(toHex(sealed.subarray(0, 16)), "d31a8d34648e60db7b86afbc53ef7ec2");
  assert.equal(toHex(sealed.subarray(sealed.length - 16)), "1ae10b594f09e26a7e902ecbd0600691");
  const c = createCipheriv("chacha20-poly1305", key, nonce, { authTagLength: 16 });
  c.setAAD(aad, { plaintextLength: plain.length });
  const viaNode = new Uint8Array([...c.update(plain), ...c.final(), ...c.getAuthTag()]);
  assert.deepEqual(sealed, viaNode);
  assert.deepEqual(open(key, nonce, sealed, aad), plain);
  sealed[3] ^= 1;
  assert.equal(open(key, nonce, sealed, aad), null);
  if (Deno.env.get("BLKSNAP_NO_LIBCRYPTO") !== "1") {
    assert.ok(openLibcrypto() !== null, "Debian hosts have libcrypto.so.3");
  }
});

Deno.test("aead: without libcrypto (node:crypto fallback) the same bytes come out", async () => {
  const script = `
    import { seal, open } from ${
    JSON.stringify(new URL("../../../lib/backup/crypto/aead.ts", import.meta.url).href)
  };
    import { aeadImplementation } from ${
    JSON.stringify(new URL("../../../lib/backup/crypto/aead.ts", import.meta.url).href)
  };
    const k = new Uint8Array(32).fill(1), n = new Uint8Array(12).fill(2), a = new Uint8Array([3]);
    const s = seal(k, n, new Uint8Array(100000).fill(4), a);
    console.log(aeadImplementation(), open(k, n, s, a)?.length, Array.from(s.subarray(-16)).join(","));`;
  const run = async (env: Record<string, string>) =>
    new TextDecoder().decode(
      (await new Deno.Command(Deno.execPath(), { args: ["eval", script], env }).output()).stdout,
    ).trim();
  const withLib = await run({});
  const without = await run({ BLKSNAP_NO_LIBCRYPTO: "1" });
  assert.match(withLib, /^libcrypto 100000 /);
  assert.match(without, /^node:crypto 100000 /);
  assert.equal(withLib.split(" ")[2], without.split(" ")[2]);
});

Deno.test("keys: a slot opens with its passphrase only, and is bound to its repository", () => {
  const master = newMaster();
  const slot = makeSlot(master, "repo-a", "correct horse", { scrypt: FAST, label: "ops" });
  const again = parseSlot(encodeSlot(slot), "k.json");
  assert.deepEqual(openSlot(again, "repo-a", "correct horse"), master);
  assert.equal(openSlot(again, "repo-a", "wrong"), null);
  assert.equal(openSlot(again, "repo-b", "correct horse"), null);
  assert.throws(() => parseSlot(new TextEncoder().encode("{}"), "k.json"), /bad fields/);
  assert.throws(
    () => parseSlot(encodeSlot({ ...slot, kdf: { ...slot.kdf, N: 1 << 30 } }), "k.json"),
    /bad fields/,
  );
});

Deno.test("keys: chunk ids are keyed (another repository's key gives another id)", () => {
  const data = new TextEncoder().encode("the same block");
  const a = deriveKeys(newMaster(), "r");
  const b = deriveKeys(newMaster(), "r");
  assert.notDeepEqual(chunkId(a, data), chunkId(b, data));
  assert.deepEqual(chunkId(a, data), chunkId(a, data));
});

Deno.test("sealed chunk: round trip; alteration, another id, another key are refused", () => {
  const keys = deriveKeys(newMaster(), "r");
  const data = crypto.getRandomValues(new Uint8Array(5000));
  const id = chunkId(keys, data);
  const file = sealChunk(keys, id, { encoding: 0, length: 5000, payloadLength: 5000 }, data);
  assert.equal(file.length, 32 + 5000 + 16);
  assert.deepEqual(openChunk(keys, id, file, 8192).payload, data);
  // Two seals of one chunk differ (random nonce) and both open.
  const file2 = sealChunk(keys, id, { encoding: 0, length: 5000, payloadLength: 5000 }, data);
  assert.notDeepEqual(file, file2);
  for (const at of [0, 9, 13, 21, 40, file.length - 1]) {
    const bad = file.slice();
    bad[at] ^= 0x20;
    assert.throws(() => openChunk(keys, id, bad, 8192), Error, `byte ${at}`);
  }
  const otherId = chunkId(keys, new Uint8Array([1]));
  assert.throws(() => openChunk(keys, otherId, file, 8192), /authentication failed/);
  assert.throws(
    () => openChunk(deriveKeys(newMaster(), "r"), id, file, 8192),
    /authentication failed/,
  );
  assert.throws(() => openChunk(keys, id, file.subarray(0, 40), 8192), /bytes/);
  assert.throws(() => openChunk(keys, id, file, 4096), /out of range/);
});

Deno.test("sealed object: bound to its name", () => {
  const keys = deriveKeys(newMaster(), "r");
  const plain = new TextEncoder().encode('{"id":"x"}');
  const file = sealObject(keys, "backups/a.json", plain);
  assert.deepEqual(openObject(keys, "backups/a.json", file), plain);
  assert.throws(() => openObject(keys, "backups/b.json", file), /authentication failed/);
  const bad = file.slice();
  bad[bad.length - 20] ^= 1;
  assert.throws(() => openObject(keys, "backups/a.json", bad), /authentication failed/);
  assert.throws(() => openObject(keys, "backups/a.json", plain), /not a sealed object/);
});

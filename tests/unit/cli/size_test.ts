import assert from "node:assert/strict";
import { InvalidArgumentError } from "../../../deps.ts";
import {
  formatBytes,
  formatDuration,
  parseCount,
  parseSectorRange,
  parseSize,
  parseSizeNumber,
  parseUuidArg,
} from "../../../cli/_size.ts";

Deno.test("parseSize() reads plain bytes and binary suffixes", () => {
  const cases: [string, bigint][] = [
    ["0", 0n],
    ["4096", 4096n],
    ["512K", 512n << 10n],
    ["512k", 512n << 10n],
    ["4M", 4n << 20n],
    ["4MiB", 4n << 20n],
    ["4mb", 4n << 20n],
    ["1G", 1n << 30n],
    [" 2 T ", 2n << 40n],
    ["3P", 3n << 50n],
    ["20000P", 20000n << 50n],
  ];
  for (const [text, bytes] of cases) assert.deepEqual(parseSize(text), bytes, text);
});

Deno.test("parseSize() rejects what is not a size with InvalidArgumentError", () => {
  for (const text of ["", "G", "1.5G", "-1", "1X", "1 GB B", "0x10", "1iB", "1e3"]) {
    assert.throws(() => parseSize(text), InvalidArgumentError, text);
  }
});

Deno.test("parseSizeNumber() checks the range", () => {
  assert.deepEqual(parseSizeNumber("4M", 4096, 64 << 20), 4 << 20);
  assert.throws(() => parseSizeNumber("128M", 4096, 64 << 20), InvalidArgumentError);
  assert.throws(() => parseSizeNumber("1K", 4096, 64 << 20), InvalidArgumentError);
});

Deno.test("parseCount() accepts non-negative integers up to max", () => {
  assert.deepEqual(parseCount("0"), 0);
  assert.deepEqual(parseCount("255", 255), 255);
  assert.throws(() => parseCount("256", 255), InvalidArgumentError);
  for (const t of ["-1", "1.0", "x", "", "1K"]) {
    assert.throws(() => parseCount(t), InvalidArgumentError, t);
  }
});

Deno.test("parseSectorRange() reads sector:count as bigints", () => {
  assert.deepEqual(parseSectorRange("2048:8"), { sector: 2048n, count: 8n });
  assert.deepEqual(parseSectorRange("18446744073709551615:1"), {
    sector: 18446744073709551615n,
    count: 1n,
  });
  for (const t of ["2048", "2048:", ":8", "1:0", "a:b", "1:-2", "1:2:3"]) {
    assert.throws(() => parseSectorRange(t), InvalidArgumentError, t);
  }
});

Deno.test("formatBytes() and formatDuration() read well", () => {
  assert.deepEqual(formatBytes(0), "0 B");
  assert.deepEqual(formatBytes(1023), "1023 B");
  assert.deepEqual(formatBytes(1536), "1.5 KiB");
  assert.deepEqual(formatBytes(4n << 30n), "4.0 GiB");
  assert.deepEqual(formatDuration(850), "850 ms");
  assert.deepEqual(formatDuration(12_340), "12.3 s");
  assert.deepEqual(formatDuration(245_000), "4 min 05 s");
});

Deno.test("parseUuidArg() accepts UUID text only, lower-cased", () => {
  assert.deepEqual(
    parseUuidArg("0F641E87-925A-3CF9-71D4-3A139747B514"),
    "0f641e87-925a-3cf9-71d4-3a139747b514",
  );
  for (
    const t of ["", "x", "0f641e87925a3cf971d43a139747b514", "0f641e87-925a-3cf9-71d4-3a139747b51"]
  ) {
    assert.throws(() => parseUuidArg(t), InvalidArgumentError, t);
  }
});

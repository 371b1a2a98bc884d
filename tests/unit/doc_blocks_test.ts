// Every command block of README.md and docs/operations.md says where the
// tests run it, and the documented cron file is the one the install ships.
import assert from "node:assert/strict";
import { docBlocks, DOCS, ROOT } from "../_doc_blocks.ts";

Deno.test("every sh/cron block of the operator's documents is run by a test or says why not", async () => {
  let counted = 0;
  for (const doc of DOCS) {
    for (const b of await docBlocks(doc)) {
      if (!["sh", "cron"].includes(b.lang)) continue;
      counted++;
      assert.notEqual(
        b.where,
        null,
        `${doc}:${b.line}: annotate it <!-- test: host|vm|skip: why -->`,
      );
      if (b.where === "skip") assert.ok(b.reason.length > 20, `${doc}:${b.line}: say why`);
    }
  }
  assert.ok(counted > 10, `${counted} blocks`);
});

Deno.test("the documented cron file is dist/cron.d/blksnap as installed in /usr/local", async () => {
  const blocks = (await docBlocks("docs/operations.md")).filter((b) => b.where === "cron");
  assert.equal(blocks.length, 1);
  const shipped = (await Deno.readTextFile(`${ROOT}dist/cron.d/blksnap`))
    .replaceAll("@BINDIR@", "/usr/local/bin");
  assert.equal(blocks[0].text.trim(), shipped.trim());
  for (const line of shipped.split("\n").filter((l) => /^\d/.test(l))) {
    const command = line.split(/\s+/).slice(6).join(" ");
    for (const part of command.split("&&")) {
      assert.match(part.trim(), /^\/usr\/local\/bin\/blksnap --quiet /, "absolute path, quiet");
    }
  }
});

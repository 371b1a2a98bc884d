/**
 * The command blocks of README.md and docs/operations.md marked
 * `<!-- test: host -->` run here, in document order, as an operator would
 * type them (`sh -e`, `blksnap` on PATH), with the documents' example paths
 * and ids pointed at a scratch directory (tests/_doc_blocks.ts). Blocks that
 * need the kernel module run in VM suite 49.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { docBlocks, DOCS, oldestBackupId, ROOT, substitute } from "../_doc_blocks.ts";

for (const doc of DOCS) {
  const blocks = (await docBlocks(doc)).filter((b) => b.where === "host");
  if (blocks.length === 0) continue;
  Deno.test(`${doc}: the host command blocks run as written`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "blksnap-docs-" });
    try {
      await Deno.mkdir(join(dir, "tmp"));
      await Deno.mkdir(join(dir, "bin"));
      const wrapper = join(dir, "bin/blksnap");
      await Deno.writeTextFile(
        wrapper,
        `#!/bin/sh\nexec '${Deno.execPath()}' run -A '${join(ROOT, "cli/main.ts")}' "$@"\n`,
      );
      await Deno.chmod(wrapper, 0o755);
      // A clean environment, but Deno's module cache and network settings kept.
      const keep = Object.entries(Deno.env.toObject()).filter(([k]) =>
        /^(DENO_|NPM_CONFIG_|npm_config_|HTTPS?_PROXY|NO_PROXY|SSL_CERT)/i.test(k)
      );
      const env = {
        ...Object.fromEntries(keep),
        DENO_DIR: Deno.env.get("DENO_DIR") ?? join(Deno.env.get("HOME") ?? "/root", ".cache/deno"),
        PATH: `${join(dir, "bin")}:/usr/sbin:/usr/bin:/sbin:/bin`,
        HOME: dir,
        NO_COLOR: "1",
        BLKSNAP_PASSWORD: "doc-test-passphrase",
      };
      for (const b of blocks) {
        const id = await oldestBackupId(join(dir, "repo"));
        const script = substitute(b.text, { dir, id, clone: ROOT });
        const out = await new Deno.Command("/bin/sh", {
          args: ["-e", "-c", script],
          cwd: ROOT,
          env,
          clearEnv: true,
          stdin: "null",
          stdout: "piped",
          stderr: "piped",
        }).output();
        const text = new TextDecoder();
        assert.equal(
          out.code,
          0,
          `${doc}:${b.line} failed (exit ${out.code}):\n${script}\n--- stdout\n${
            text.decode(out.stdout)
          }--- stderr\n${text.decode(out.stderr)}`,
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

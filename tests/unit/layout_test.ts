// Every size and offset in lib/ffi/layout.ts against the C compiler's
// sizeof/offsetof, from tests/native/layout_probe.c built from kmod/uapi/.
import assert from "node:assert/strict";
import { layout } from "../../lib/ffi/layout.ts";

const root = new URL("../../", import.meta.url).pathname;

async function probe(): Promise<Record<string, Record<string, number>>> {
  const out = `${await Deno.makeTempDir()}/layout_probe`;
  const cc = await new Deno.Command("cc", {
    args: [
      "-std=gnu11",
      "-Wall",
      "-Werror",
      `-I${root}kmod/uapi`,
      `${root}tests/native/layout_probe.c`,
      "-o",
      out,
    ],
  }).output();
  assert.equal(cc.code, 0, new TextDecoder().decode(cc.stderr));
  const run = await new Deno.Command(out).output();
  assert.equal(run.code, 0);
  await Deno.remove(out);
  return JSON.parse(new TextDecoder().decode(run.stdout));
}

Deno.test("layout.ts matches the C sizeof and offsetof of every struct", async (t) => {
  const c = await probe();
  assert.deepEqual(Object.keys(layout).sort(), Object.keys(c).sort());
  for (const [name, fields] of Object.entries(layout)) {
    await t.step(`struct ${name}`, () => {
      assert.deepEqual({ ...fields }, c[name]);
    });
  }
});

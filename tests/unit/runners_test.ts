// The counters behind the test and benchmark runners: a result they fail to
// count is a result nobody sees.
import assert from "node:assert/strict";
import { countTap } from "../_tap.ts";
import { parseBenchLines, table } from "../../bench/_results.ts";
import { GOALS, idProblems } from "../../bench/_goals.ts";

Deno.test("countTap() counts top-level results, CR LF endings included", () => {
  const text = [
    "TAP version 14",
    "ok 1 - first\r",
    "not ok 2 - second\r",
    "    ok 1 - a sub-step is not counted",
    "ok - [00-module_load] from a shell suite\r",
    "ok 3 - skipped one # SKIP no root",
    "ok 4 - ignored one # ignored",
    "okay, not a result",
    "1..4",
  ].join("\n");
  const c = countTap(text);
  assert.equal(c.passed, 2);
  assert.equal(c.failed, 1);
  assert.equal(c.skipped, 2);
  assert.deepEqual(c.failures, ["second"]);
});

Deno.test("countTap() counts nothing in text without results", () => {
  assert.deepEqual(countTap("no tests here\n# ok\n"), {
    passed: 0,
    failed: 0,
    skipped: 0,
    failures: [],
  });
});

Deno.test("parseBenchLines() reads BENCH lines and orients the ratio", () => {
  const out = [
    'BENCH {"metric":"write","unit":"MiB/s","ours":50,"peer":100,"peerName":"untracked","higherIsBetter":true}\r',
    "[ 12.3] a kernel message",
    'noise BENCH {"metric":"time","unit":"s","ours":4,"peer":2,"peerName":"dd","higherIsBetter":false}',
    'BENCH {"metric":"garbled","unit":"s","ours":',
    'BENCH {"metric":"no peer","unit":"s","ours":1}',
  ].join("\n");
  const rs = parseBenchLines(out, "x.sh");
  assert.equal(rs.length, 2);
  assert.equal(rs[0].ratio, 0.5);
  assert.equal(rs[1].ratio, 0.5);
  assert.equal(rs[1].source, "x.sh");
  assert.match(table(rs), /\| write \| 50\.0 MiB\/s \| untracked: 100 MiB\/s \| 0\.500 \|/);
});

Deno.test("parseBenchLines() keeps the id and says where a row was measured", () => {
  const line = (id: string) =>
    `BENCH {"id":"${id}","metric":"m","unit":"s","ours":2,"peer":1,"peerName":"p","higherIsBetter":false}`;
  const [host] = parseBenchLines(line("backup.full.vs_restic"), "backup.ts");
  const [vm] = parseBenchLines(line("cow.steady.vs_none"), "vm/snapshot_cow.sh");
  assert.equal(host.id, "backup.full.vs_restic");
  assert.equal(host.where, "host");
  assert.match(vm.where ?? "", /VM \(cloud kernel, QEMU TCG\)/);
  assert.match(table([host]), /^\| `backup\.full\.vs_restic` \| m \|/m);
});

Deno.test("idProblems() names goal rows not measured and ids reported twice", () => {
  const row = (id: string) => ({
    id,
    metric: id,
    unit: "s",
    ours: 1,
    peer: 1,
    peerName: "p",
    higherIsBetter: false,
  });
  const all = GOALS.map((g) => row(g.id));
  assert.deepEqual(idProblems(all), []);
  const problems = idProblems([...all.slice(1), row("x.y"), row("x.y")]);
  assert.equal(problems.length, 2);
  assert.match(problems[0], new RegExp(`not measured: ${GOALS[0].id.replaceAll(".", "\\.")}$`));
  assert.match(problems[1], /more than once: x\.y$/);
});

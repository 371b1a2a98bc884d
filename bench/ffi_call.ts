/**
 * The binding's overhead against C doing the same work (bench/ffi_call.c,
 * compiled here with `cc -O2`):
 *
 * - one FFI call into libblksnap (`blksnap_lib_version`, no syscall) vs the
 *   same call from C through a function pointer;
 * - one call that makes an ioctl (`blksnap_ctl_version`) vs C: only where
 *   the module is loaded (the VM), skipped otherwise;
 * - extracting the changed extents of a 16 MiB CBT map (16 Mi blocks of
 *   4 KiB, 64 GiB device; clustered dirty runs over ~6 % of the blocks;
 *   `since` = 2) with `CbtMap.changedExtents()` vs a C byte loop;
 * - where a device is given (`--device DEV`, an attached tracker with a
 *   16 Mi-block map, in the VM): `Tracker.readCbtMap()` vs C reading the
 *   whole map with the same three requests (cbtinfo, cbtmap, cbtinfo).
 *
 * Prints `BENCH {...}` lines (see bench/run.ts) and, for each, a JSON line
 * `{"ratio": ours / C, ...}`. `--quick`: fewer repetitions.
 * `--twin PATH`: a prebuilt C twin (the VM has no compiler).
 *
 * @module
 */

import { CbtMap } from "../mod.ts";
import { loadLibrary } from "../lib/ffi/library.ts";
import { median, spread } from "./_results.ts";

const quick = Deno.args.includes("--quick");
const argValue = (name: string): string | undefined => {
  const i = Deno.args.indexOf(name);
  return i >= 0 ? Deno.args[i + 1] : undefined;
};
const repo = new URL("..", import.meta.url).pathname;
const libPath = Deno.env.get("BLKSNAP_LIB") ?? `${repo}kmod/ctl/build/libblksnap.so.1`;
const conditions = `kernel ${Deno.osRelease()}, Deno ${Deno.version.deno}`;

/** Row ids get `.vm` in the VM (where the C twin is given), so host and VM rows differ. */
const idWhere = argValue("--twin") ? ".vm" : "";

function report(id: string, metric: string, ours: number[], peer: number, extra: string): void {
  const line = {
    id: id.replace(/^ffi\.([a-z_]+)/, `ffi.$1${idWhere}`),
    metric,
    unit: "ns",
    ours: median(ours),
    peer,
    peerName: "C (bench/ffi_call.c, -O2)",
    higherIsBetter: false,
    reps: ours.length,
    spread: spread(ours),
    conditions: `${extra}; ${conditions}`,
  };
  console.log(`BENCH ${JSON.stringify(line)}`);
  console.log(JSON.stringify({ metric, ratio: line.ours / peer, oursNs: line.ours, cNs: peer }));
}

async function twinPath(): Promise<string> {
  const given = argValue("--twin");
  if (given) return given;
  const out = `${repo}kmod/ctl/build/bench/ffi_call`;
  await Deno.mkdir(`${repo}kmod/ctl/build/bench`, { recursive: true });
  const cc = await new Deno.Command("cc", {
    args: [
      "-O2",
      "-Wall",
      "-Wextra",
      "-Werror",
      `-I${repo}kmod/uapi`,
      `${repo}bench/ffi_call.c`,
      "-o",
      out,
    ],
  }).output();
  if (cc.code !== 0) throw new Error(new TextDecoder().decode(cc.stderr));
  return out;
}

async function twin(path: string, ...args: string[]): Promise<Record<string, number>> {
  const out = await new Deno.Command(path, { args }).output();
  if (out.code !== 0) {
    throw new Error(`${path} ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`);
  }
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

const reps = quick ? 3 : 7;
const twinBin = await twinPath();
const lib = loadLibrary().symbols;

// 1. One call, no syscall.
{
  const n = quick ? 200_000 : 2_000_000;
  const version = lib.blksnap_lib_version;
  const loop = (count: number): number => {
    let sink = 0;
    for (let i = 0; i < count; i++) sink += version();
    return sink;
  };
  for (let r = 0; r < 3; r++) loop(n); // warm up: let the JIT optimize the call
  const ours: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    loop(n);
    ours.push(((performance.now() - t0) * 1e6) / n);
  }
  const c = await twin(twinBin, libPath, "call", String(n));
  report(
    "ffi.call.vs_c",
    "one FFI call into libblksnap (blksnap_lib_version)",
    ours,
    c.ns,
    `${n} calls per rep`,
  );
}

// 2. One call that makes an ioctl (needs the module).
if (await Deno.stat("/dev/blksnap-control").then(() => true, () => false)) {
  const n = quick ? 20_000 : 200_000;
  const out = new BigUint64Array(1);
  if (lib.blksnap_ctl_open(null, out) !== 0) throw new Error("blksnap_ctl_open failed");
  const ctl = Deno.UnsafePointer.create(out[0]);
  const buf = new Uint8Array(8);
  for (let i = 0; i < 10_000; i++) lib.blksnap_ctl_version(ctl, buf);
  const ours: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    for (let i = 0; i < n; i++) lib.blksnap_ctl_version(ctl, buf);
    ours.push(((performance.now() - t0) * 1e6) / n);
  }
  lib.blksnap_ctl_close(ctl);
  const c = await twin(twinBin, libPath, "ioctl", String(n));
  report(
    "ffi.ioctl.vs_c",
    "one FFI call with an ioctl (blksnap_ctl_version)",
    ours,
    c.ns,
    `${n} calls per rep`,
  );
} else {
  console.log("# skipped the ioctl call: /dev/blksnap-control is absent (module not loaded)");
}

// 3. Extents of a synthetic 16 MiB map.
{
  const blocks = 16 * 1024 * 1024;
  const blockSize = 4096;
  const capacity = BigInt(blocks) * BigInt(blockSize) - 1000n;
  const bytes = new Uint8Array(blocks);
  let x = 12345;
  const rand = (): number => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
  for (let i = 0; i < blocks;) {
    i += Math.floor(rand() * 2000);
    const run = 1 + Math.floor(rand() * 128);
    bytes.fill(1 + Math.floor(rand() * 5), i, Math.min(blocks, i + run));
    i += run;
  }
  const since = 2;
  const file = await Deno.makeTempFile({ suffix: ".cbtmap" });
  await Deno.writeFile(file, bytes);
  const info = {
    deviceCapacity: capacity,
    blockSize,
    blockCount: blocks,
    generationId: "00000000-0000-0000-0000-000000000000",
    changesNumber: 5,
  };
  let extents = 0;
  let total = 0n;
  const extract = (): number => {
    const t0 = performance.now();
    const map = new CbtMap(info, bytes); // fresh: no cached piece summaries
    const list = map.changedExtents(since);
    const t = (performance.now() - t0) * 1e6;
    extents = list.length;
    total = list.reduce((s, e) => s + e.length, 0n);
    return t;
  };
  // Cold: the first extraction in this process, as a one-shot CLI run does it.
  const cold = [extract()];
  for (let r = 0; r < 10; r++) extract(); // let the JIT optimize the scan
  const ours: number[] = [];
  for (let r = 0; r < reps; r++) ours.push(extract());
  const c = await twin(
    twinBin,
    "-",
    "extents",
    file,
    String(since),
    String(blockSize),
    String(capacity),
    quick ? "2" : "5",
  );
  await Deno.remove(file);
  if (c.extents !== extents || BigInt(c.bytes) !== total) {
    throw new Error(`C found ${c.extents} extents/${c.bytes} bytes, TS ${extents}/${total}`);
  }
  report(
    "ffi.changed_extents_cold.vs_c",
    "changed extents of a 16 MiB CBT map, first call (CbtMap.changedExtents)",
    cold,
    c.ns,
    `16 Mi blocks, ${extents} extents, since ${since}, cold JIT`,
  );
  report(
    "ffi.changed_extents.vs_c",
    "changed extents of a 16 MiB CBT map, warmed up (CbtMap.changedExtents)",
    ours,
    c.ns,
    `16 Mi blocks, ${extents} extents, since ${since}, after 10 warm-up runs`,
  );
}

// 4. Reading a whole 16 Mi-block map from the module (VM, --device DEV).
const device = argValue("--device");
if (device) {
  const { Tracker } = await import("../mod.ts");
  using tracker = Tracker.open(device);
  tracker.readCbtMap();
  const ours: number[] = [];
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    tracker.readCbtMap();
    ours.push((performance.now() - t0) * 1e6);
  }
  const c = await twin(twinBin, libPath, "cbtmap", device, "3");
  report(
    "ffi.read_cbt_map.vs_c",
    "read a whole CBT map (Tracker.readCbtMap)",
    ours,
    c.ns,
    `${device}, ${c.blocks} blocks`,
  );
}

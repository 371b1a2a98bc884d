/*
# vm-modparams: enable_test_ioctls=1 chunk_minimum_shift=16 diff_storage_minimum=16384
*/
// The Deno binding against the real module, through the public API only.
// First the binding contract (tests/contract/binding_contract.ts), the same
// cases the unit tier runs against the fake system call layer, so the two
// cannot drift; then what only the real module can show: real writes in
// the CBT map and the image, map reads racing takes, and a dropped
// handle's release in a child process. Runs in the VM as root with the module loaded
// (tests/vm/guest/run_suites.sh); libblksnap comes from kmod/ctl/build/
// (BLKSNAP_LIB unset). Suite 31 runs this file over the control device.
import assert from "node:assert/strict";
import { BlksnapError, Snapshot, Tracker } from "../../../mod.ts";
import { defineBindingContract } from "../../contract/binding_contract.ts";
import { waitForBlockDevice } from "./40-helpers.ts";

const MODULE_KO = "/project/kmod/module/blksnap.ko";
// The transport under test: the module's BLKFILTER requests on device fds
// (default), or the control device when the runner loaded the module with
// blkfilter_ioctls=0 (suite 31 runs this file that way).
const BLKFILTER_IOCTLS =
  Deno.readTextFileSync("/sys/module/blksnap/parameters/blkfilter_ioctls").trim() === "Y";
const MODPARAMS = [
  "enable_test_ioctls=1",
  "chunk_minimum_shift=16",
  "diff_storage_minimum=16384",
  `blkfilter_ioctls=${BLKFILTER_IOCTLS ? 1 : 0}`,
];
const STORE = "/dev/shm/binding30";
const MiB = 1 << 20;

function pattern(seed: number, length: number): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(length);
  let x = seed * 2654435761 >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

function writeAt(device: string, offset: number, data: Uint8Array): void {
  using file = Deno.openSync(device, { read: true, write: true });
  file.seekSync(offset, Deno.SeekMode.Start);
  let done = 0;
  while (done < data.length) done += file.writeSync(data.subarray(done));
  file.syncSync();
}

function readAt(device: string, offset: number, length: number): Uint8Array {
  using file = Deno.openSync(device, { read: true });
  file.seekSync(offset, Deno.SeekMode.Start);
  const out = new Uint8Array(length);
  let done = 0;
  while (done < length) {
    const n = file.readSync(out.subarray(done));
    if (n === null) break;
    done += n;
  }
  return out;
}

async function run(cmd: string, ...args: string[]): Promise<number> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return out.code;
}

/** Detaches a device if attached, to start from a known state. */
function ensureDetached(device: string): void {
  using tracker = Tracker.open(device);
  try {
    tracker.detach();
  } catch (err) {
    if (!(err instanceof BlksnapError && err.code === "ENOENT")) throw err;
  }
}

const DEVICES = ["/dev/ram0", "/dev/ram1", "/dev/ram2", "/dev/ram3"] as const;

/** No snapshot, no tracker on the brd disks. */
function cleanSlate(): void {
  for (const id of Snapshot.collect()) Snapshot.open(id).destroy();
  for (const device of DEVICES) ensureDetached(device);
}

Deno.mkdirSync(STORE, { recursive: true });

defineBindingContract({
  name: "kernel",
  devices: DEVICES,
  capacity: 128n * BigInt(MiB),
  firstDevice: { major: 1, minor: 0 },
  notBlockDevices: ["/dev/null", "/proc/version", "/dev/blksnap-control"],
  missing: "/dev/no-such-device",
  transport: BLKFILTER_IOCTLS ? "blkfilter" : "control",
  diffStorage: STORE,
  limit: 256 * MiB,
  badStorage: "/dev/null",
  setUp: cleanSlate,
  tearDown: cleanSlate,
  async withoutModule(fn): Promise<void> {
    // Every handle is closed, so nothing holds the control device open.
    assert.equal(await run("rmmod", "blksnap"), 0, "rmmod blksnap");
    try {
      await fn();
    } finally {
      assert.equal(await run("insmod", MODULE_KO, ...MODPARAMS), 0, "insmod blksnap");
    }
  },
  waitForImage: async (path): Promise<void> => {
    await waitForBlockDevice(path);
  },
});

// Only the real module sees real writes: a write before the first take is
// in the write map only.
Deno.test("a write before the first take is not in the read map", () => {
  cleanSlate();
  using tracker = Tracker.open("/dev/ram0");
  tracker.attach();
  writeAt("/dev/ram0", 0, pattern(1, 65536));
  assert.equal(tracker.readCbtMap().changedBytes(0), 0n);
  tracker.detach();
});

// A child process, so that its collector runs with --expose-gc.
Deno.test("a Tracker dropped without close() is released by the garbage collector", async () => {
  const child = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--cached-only",
      "--v8-flags=--expose-gc",
      new URL("./_binding_gc.ts", import.meta.url).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(child.stdout) + new TextDecoder().decode(child.stderr);
  assert.equal(child.code, 0, out);
  assert.match(out, /released/);
});

Deno.test("the image is the device at the take; the write before it is in the map", async () => {
  cleanSlate();
  using tracker = Tracker.open("/dev/ram1");
  tracker.attach();
  const before = pattern(2, MiB);
  writeAt("/dev/ram1", 4 * MiB, before);
  using snapshot = Snapshot.create({ diffStorage: STORE, limit: 256 * MiB, devices: [tracker] });
  snapshot.take();
  const image = snapshot.imagePath(tracker);
  await waitForBlockDevice(image);
  writeAt("/dev/ram1", 4 * MiB, pattern(3, MiB));
  assert.deepEqual(readAt(image, 4 * MiB, MiB), before);
  assert.deepEqual(readAt("/dev/ram1", 4 * MiB, MiB), pattern(3, MiB));
  const cbt = tracker.cbtInfo();
  assert.equal(cbt.changesNumber, 1);
  const block = (4 * MiB) / cbt.blockSize;
  assert.ok(tracker.readCbtMap().changedBlocks(0).includes(block));
  snapshot.destroy();
  tracker.detach();
});

Deno.test("CbtMap.changedExtents(since) gives exactly the blocks written between two takes", async () => {
  cleanSlate();
  using tracker = Tracker.open("/dev/ram1");
  tracker.attach();
  {
    using first = Snapshot.create({ diffStorage: STORE, limit: 256 * MiB, devices: [tracker] });
    first.take();
  }
  const saved = tracker.cbtInfo();
  const bs = saved.blockSize;
  writeAt("/dev/ram1", 3 * bs, pattern(4, bs));
  writeAt("/dev/ram1", 10 * bs + 512, pattern(5, 2 * bs)); // spans blocks 10..12
  {
    using second = Snapshot.create({ diffStorage: STORE, limit: 256 * MiB, devices: [tracker] });
    second.take();
    await waitForBlockDevice(second.imagePath(tracker));
  }
  const map = tracker.readCbtMap();
  assert.equal(map.changesNumber, saved.changesNumber + 1);
  assert.deepEqual(map.changedBlocks(saved.changesNumber), [3, 10, 11, 12]);
  const b = BigInt(bs);
  assert.deepEqual(map.changedExtents(saved.changesNumber), [
    { offset: 3n * b, length: b },
    { offset: 10n * b, length: 3n * b },
  ]);
  tracker.detach();
});

// Review finding 17: a CBTMAP request that a switch overtakes fails with
// EAGAIN in the kernel; readCbtMap() reads again (3 times at most) and
// returns one switch's map, or throws EAGAIN. A child (cbt_tool
// writeswitch) writes block k % 64 and switches, for k = 1..250, while this
// process reads the whole map, sync and async: after s switches, block
// j < 64 holds the last k <= s with k % 64 == j. A 2 GiB device has 32768
// tracking blocks, so each map request copies 8 bounce pieces.
Deno.test("readCbtMap() racing switches: one switch's map, or EAGAIN", async (t) => {
  cleanSlate();
  const file = `${STORE}/race.img`;
  Deno.writeFileSync(file, new Uint8Array(0));
  Deno.truncateSync(file, 2 * 1024 * MiB);
  const setup = await new Deno.Command("losetup", { args: ["-f", "--show", file] }).output();
  assert.equal(setup.code, 0, "losetup");
  const loop = new TextDecoder().decode(setup.stdout).trim();
  const expected = (j: number, s: number): number => {
    if (j >= 64 || s < j) return 0;
    const k = s - (s - j) % 64;
    return k >= 1 ? k : 0;
  };
  let reads = 0, again = 0, spanning = 0;
  const started = Date.now();
  try {
    using tracker = Tracker.open(loop);
    tracker.attach();
    for (let round = 0; round < 2; round++) {
      if (round > 0) {
        tracker.detach();
        tracker.attach();
      }
      const child = new Deno.Command("cbt_tool", {
        args: ["writeswitch", loop, "250", "64"],
        stdout: "piped",
        stderr: "piped",
      }).spawn();
      let done = false;
      const status = child.output().then((out) => {
        done = true;
        return out;
      });
      while (!done) {
        for (const read of [() => tracker.readCbtMap(), () => tracker.readCbtMapAsync()]) {
          const start = tracker.cbtInfo().changesNumber;
          let map;
          try {
            map = await read();
          } catch (err) {
            if (err instanceof BlksnapError && err.code === "EAGAIN") {
              again++;
              continue;
            }
            throw err;
          }
          reads++;
          if (map.changesNumber !== start) spanning++;
          const bytes = map.toBytes();
          for (let j = 0; j < bytes.length; j++) {
            if (bytes[j] !== expected(j, map.changesNumber)) {
              assert.fail(
                `block ${j} is ${bytes[j]} in the map of switch ${map.changesNumber}, ` +
                  `expected ${expected(j, map.changesNumber)}`,
              );
            }
          }
        }
      }
      const out = await status;
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      assert.equal(tracker.cbtInfo().changesNumber, 250);
    }
    tracker.detach();
  } finally {
    await new Deno.Command("losetup", { args: ["-d", loop] }).output();
    Deno.removeSync(file);
  }
  // A step named with the figures: the TAP reporter shows no console output.
  const seconds = Math.round((Date.now() - started) / 1000);
  await t.step(
    `${reads} maps read, ${spanning} across a switch, ${again} EAGAIN, ${seconds} s`,
    () => {
      assert.ok(reads > 0);
    },
  );
});

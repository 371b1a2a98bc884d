/*
# vm-modparams: chunk_minimum_shift=16 diff_storage_minimum=16384
*/
// The Deno binding against the real module, through the public API only:
// every Tracker, Snapshot and Session method, their error cases (closed
// handle, not a block device, detach of an unattached device, missing
// module), and the release of a dropped handle by the garbage collector.
// Runs in the VM as root with the module loaded (tests/vm/guest/run_suites.sh);
// libblksnap comes from kmod/ctl/build/ (BLKSNAP_LIB unset).
import assert from "node:assert/strict";
import {
  BlksnapError,
  moduleVersion,
  Session,
  Snapshot,
  type SnapshotEvent,
  Tracker,
} from "../../../mod.ts";
import { waitForBlockDevice } from "./40-helpers.ts";

const MODULE_KO = "/project/kmod/module/blksnap.ko";
// The transport under test: the module's BLKFILTER requests on device fds
// (default), or the control device when the runner loaded the module with
// blkfilter_ioctls=0 (suite 31 runs this file that way).
const BLKFILTER_IOCTLS =
  Deno.readTextFileSync("/sys/module/blksnap/parameters/blkfilter_ioctls").trim() === "Y";
const MODPARAMS = [
  "chunk_minimum_shift=16",
  "diff_storage_minimum=16384",
  `blkfilter_ioctls=${BLKFILTER_IOCTLS ? 1 : 0}`,
];
const STORE = "/dev/shm/binding30";
const MiB = 1 << 20;

function code(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  return "no error";
}

async function asyncCode(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  return "no error";
}

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

Deno.mkdirSync(STORE, { recursive: true });

/** Whether the module answers the snapshot requests (not EOPNOTSUPP). */
const snapshotSupport: string = (() => {
  try {
    Snapshot.collect();
    return "";
  } catch (err) {
    if (err instanceof BlksnapError && err.code === "EOPNOTSUPP") {
      return "the module answers EOPNOTSUPP to snapshot requests";
    }
    return `Snapshot.collect() failed: ${err}`;
  }
})();
const snapshotTest = (name: string, fn: () => void | Promise<void>): void => {
  Deno.test({
    name: snapshotSupport ? `${name} (skipped: ${snapshotSupport})` : name,
    ignore: snapshotSupport !== "",
    fn,
  });
};

Deno.test("moduleVersion() reports 2.0.0.0", () => {
  assert.deepEqual(moduleVersion(), { major: 2, minor: 0, revision: 0, build: 0 });
});

Deno.test("Tracker.open() of something that is not a block device fails", () => {
  assert.equal(code(() => Tracker.open("/dev/null")), "ENOTBLK");
  assert.equal(code(() => Tracker.open("/proc/version")), "ENOTBLK");
  assert.equal(code(() => Tracker.open("/dev/blksnap-control")), "ENOTBLK");
  assert.equal(code(() => Tracker.open("/dev/no-such-device")), "ENOENT");
  assert.throws(() => Tracker.open(""), TypeError);
});

Deno.test("Tracker uses the transport the module offers, and the device number", () => {
  using tracker = Tracker.open("/dev/ram0");
  assert.equal(tracker.transport, BLKFILTER_IOCTLS ? "blkfilter" : "control");
  assert.equal(tracker.major, 1);
  assert.equal(tracker.minor, 0);
  assert.equal(tracker.device, "/dev/ram0");
});

Deno.test("Tracker.detach() of an unattached device is ENOENT", () => {
  ensureDetached("/dev/ram0");
  using tracker = Tracker.open("/dev/ram0");
  assert.equal(code(() => tracker.detach()), "ENOENT");
  assert.equal(code(() => tracker.cbtInfo()), "ENOENT");
  assert.equal(code(() => tracker.readCbtMap()), "ENOENT");
  assert.equal(code(() => tracker.snapshotInfo()), "ENOENT");
});

Deno.test("Tracker.attach() is true, then false; cbtInfo() describes the map", () => {
  ensureDetached("/dev/ram0");
  using tracker = Tracker.open("/dev/ram0");
  assert.equal(tracker.attach(), true);
  assert.equal(tracker.attach(), false);
  const info = tracker.cbtInfo();
  assert.equal(info.deviceCapacity, 128n * BigInt(MiB));
  assert.ok(info.blockSize >= 4096 && (info.blockSize & (info.blockSize - 1)) === 0);
  assert.equal(
    BigInt(info.blockCount),
    (info.deviceCapacity + BigInt(info.blockSize) - 1n) /
      BigInt(info.blockSize),
  );
  assert.match(info.generationId, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.notEqual(info.generationId, "00000000-0000-0000-0000-000000000000");
  assert.equal(info.changesNumber, 0);
  tracker.detach();
  assert.equal(tracker.attach(), true);
  assert.notEqual(tracker.cbtInfo().generationId, info.generationId, "a new generation");
  tracker.detach();
});

Deno.test("Tracker.readCbtMap() of a fresh tracker has no changes, sync and async alike", async () => {
  ensureDetached("/dev/ram0");
  using tracker = Tracker.open("/dev/ram0");
  tracker.attach();
  writeAt("/dev/ram0", 0, pattern(1, 65536)); // only the write map sees it before a take
  const map = tracker.readCbtMap();
  assert.equal(map.blockCount, tracker.cbtInfo().blockCount);
  assert.equal(map.changedBytes(0), 0n);
  const again = await tracker.readCbtMapAsync();
  assert.deepEqual(again.toBytes(), map.toBytes());
  tracker.detach();
});

Deno.test("Tracker.markDirty() checks ranges; the kernel refuses ranges past the end", () => {
  ensureDetached("/dev/ram0");
  using tracker = Tracker.open("/dev/ram0");
  tracker.attach();
  tracker.markDirty([]);
  tracker.markDirty([{ sector: 0n, count: 8n }, { sector: 2048n, count: 4096n }]);
  assert.equal(code(() => tracker.markDirty([{ sector: 262144n, count: 1n }])), "EINVAL");
  assert.equal(code(() => tracker.markDirty([{ sector: (1n << 64n) - 1n, count: 1n }])), "EINVAL");
  assert.throws(() => tracker.markDirty([{ sector: -1n, count: 1n }]), RangeError);
  assert.throws(() => tracker.markDirty([{ sector: 0, count: 1 } as never]), TypeError);
  tracker.detach();
});

Deno.test("a closed Tracker throws EBADF; close() is idempotent", async () => {
  const tracker = Tracker.open("/dev/ram0");
  tracker.close();
  tracker.close();
  assert.equal(code(() => tracker.attach()), "EBADF");
  assert.equal(code(() => tracker.cbtInfo()), "EBADF");
  assert.equal(code(() => tracker.markDirty([])), "EBADF");
  assert.equal(await asyncCode(() => tracker.readCbtMapAsync()), "EBADF");
});

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

snapshotTest("Snapshot create, add, take: the image is the device at the take", async () => {
  ensureDetached("/dev/ram1");
  using tracker = Tracker.open("/dev/ram1");
  tracker.attach();
  const before = pattern(2, MiB);
  writeAt("/dev/ram1", 4 * MiB, before);
  const snapshot = Snapshot.create({ diffStorage: STORE, limit: 256 * MiB, devices: [tracker] });
  try {
    assert.ok(snapshot.owned);
    assert.ok(Snapshot.collect().includes(snapshot.id));
    assert.equal(code(() => snapshot.add(tracker)), "EALREADY");
    assert.equal(snapshot.info(tracker).image, null);
    assert.equal(code(() => snapshot.imagePath(tracker)), "ENODEV");
    snapshot.take();
    assert.equal(code(() => snapshot.take()), "EALREADY");
    const info = snapshot.info("/dev/ram1");
    assert.equal(info.errorCode, 0);
    assert.equal(info.error, null);
    const image = snapshot.imagePath(tracker);
    assert.equal(image, `/dev/${info.image}`);
    await waitForBlockDevice(image);
    writeAt("/dev/ram1", 4 * MiB, pattern(3, MiB));
    assert.deepEqual(readAt(image, 4 * MiB, MiB), before);
    assert.deepEqual(readAt("/dev/ram1", 4 * MiB, MiB), pattern(3, MiB));
    assert.equal(await snapshot.waitEvent(10), null);
    const cbt = tracker.cbtInfo();
    assert.equal(cbt.changesNumber, 1);
    const map = tracker.readCbtMap();
    const block = (4 * MiB) / cbt.blockSize;
    assert.ok(map.changedBlocks(0).includes(block), "the write before the take is in the map");
  } finally {
    snapshot.destroy();
  }
  assert.ok(!Snapshot.collect().includes(snapshot.id));
  assert.equal(snapshot.closed, true);
  tracker.detach();
});

snapshotTest(
  "CbtMap.changedExtents(since) gives exactly the blocks written between two takes",
  async () => {
    ensureDetached("/dev/ram1");
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
    tracker.markDirty([{ sector: BigInt((20 * bs) / 512), count: 1n }]);
    {
      using second = Snapshot.create({ diffStorage: STORE, limit: 256 * MiB, devices: [tracker] });
      second.take();
      await waitForBlockDevice(second.imagePath(tracker));
    }
    const map = tracker.readCbtMap();
    assert.equal(map.generationId, saved.generationId);
    assert.equal(map.changesNumber, saved.changesNumber + 1);
    assert.deepEqual(map.changedBlocks(saved.changesNumber), [3, 10, 11, 12, 20]);
    const b = BigInt(bs);
    assert.deepEqual(map.changedExtents(saved.changesNumber), [
      { offset: 3n * b, length: b },
      { offset: 10n * b, length: 3n * b },
      { offset: 20n * b, length: b },
    ]);
    tracker.detach();
  },
);

snapshotTest("Snapshot errors: unknown ids, empty snapshot, unattached device", async () => {
  ensureDetached("/dev/ram2");
  const ghost = Snapshot.open("01234567-89ab-cdef-0123-456789abcdef");
  assert.equal(ghost.owned, false);
  assert.equal(code(() => ghost.take()), "ESRCH");
  assert.equal(await asyncCode(() => ghost.waitEvent(10)), "ESRCH");
  assert.equal(code(() => ghost.destroy()), "ENODEV");
  const empty = Snapshot.create({ diffStorage: STORE, limit: 64 * MiB });
  assert.equal(code(() => empty.add("/dev/ram2")), "ENOENT");
  assert.equal(code(() => empty.take()), "ENODEV");
  assert.equal(code(() => Snapshot.create({ diffStorage: "/dev/null", limit: MiB })), "EINVAL");
  const opened = Snapshot.open(empty.id);
  empty.destroy();
  assert.equal(await asyncCode(() => opened.waitEvent(10)), "ESRCH");
  opened.close();
});

snapshotTest("Snapshot dispose destroys an owned snapshot and only closes an opened one", () => {
  let id: string;
  {
    using owned = Snapshot.create({ diffStorage: STORE, limit: 64 * MiB });
    id = owned.id;
    {
      using opened = Snapshot.open(id);
      assert.equal(opened.id, id);
    }
    assert.ok(Snapshot.collect().includes(id));
  }
  assert.ok(!Snapshot.collect().includes(id));
});

snapshotTest("Session: attach, take, images, maps, events, destroy on dispose", async () => {
  ensureDetached("/dev/ram2");
  ensureDetached("/dev/ram3");
  writeAt("/dev/ram2", 0, pattern(6, MiB));
  const events: SnapshotEvent[] = [];
  let id: string;
  {
    await using session = await Session.start({
      devices: ["/dev/ram2", "/dev/ram3"],
      diffStorage: STORE,
      limit: 256 * MiB,
      pollMs: 50,
      onEvent: (event) => events.push(event),
    });
    id = session.snapshot.id;
    assert.deepEqual(session.newlyAttached, ["/dev/ram2", "/dev/ram3"]);
    const image = session.imagePath("/dev/ram2");
    await waitForBlockDevice(image);
    writeAt("/dev/ram2", 0, pattern(7, MiB));
    assert.deepEqual(readAt(image, 0, MiB), pattern(6, MiB));
    assert.equal(session.cbtInfo("/dev/ram2").changesNumber, 1);
    assert.equal(session.cbtMap("/dev/ram3").blockCount, session.cbtInfo("/dev/ram3").blockCount);
    assert.equal(session.corrupted, false);
    await new Promise((resolve) => setTimeout(resolve, 120));
  }
  assert.deepEqual(events, []);
  assert.ok(!Snapshot.collect().includes(id));
  for (const device of ["/dev/ram2", "/dev/ram3"]) {
    using tracker = Tracker.open(device);
    assert.equal(tracker.attach(), false, "trackers stay attached after the session");
    tracker.detach();
  }
});

Deno.test("without the module: moduleVersion() and attach are ENOENT", async () => {
  for (const device of ["/dev/ram0", "/dev/ram1", "/dev/ram2", "/dev/ram3"]) ensureDetached(device);
  for (const id of snapshotSupport ? [] : Snapshot.collect()) Snapshot.open(id).destroy();
  // Every handle above is closed, so nothing holds the control device open.
  assert.equal(await run("rmmod", "blksnap"), 0, "rmmod blksnap");
  try {
    assert.equal(code(() => moduleVersion()), "ENOENT");
    using tracker = Tracker.open("/dev/ram0");
    assert.equal(code(() => tracker.attach()), "ENOENT");
    assert.equal(code(() => Snapshot.collect()), "ENOENT");
  } finally {
    assert.equal(await run("insmod", MODULE_KO, ...MODPARAMS), 0, "insmod blksnap");
  }
});

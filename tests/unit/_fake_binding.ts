// The public API against libblksnap linked with the fake system call layer
// (tests/native/fake_sys.c): first the binding contract
// (tests/contract/binding_contract.ts), the same cases suite 30 runs against
// the real module; then what only the fake can check, because it injects
// it: map contents, failures of chosen requests, events, the blkfilter
// probe, a module without snapshots, and the release of dropped handles by
// the garbage collector.
//
// Not a *_test.ts file: tests/unit/binding_fake_test.ts runs it in a child
// `deno test --v8-flags=--expose-gc` with BLKSNAP_LIB set to the fake build.
import assert from "node:assert/strict";
import { BlksnapError, Session, Snapshot, type SnapshotEvent, Tracker } from "../../mod.ts";
import { asyncErrorCode, defineBindingContract, errorCode } from "../contract/binding_contract.ts";

const libPath = Deno.env.get("BLKSNAP_LIB");
if (!libPath) throw new Error("BLKSNAP_LIB must name the fake build");

const fake = Deno.dlopen(
  libPath,
  {
    fake_reset: { parameters: [], result: "void" },
    fake_set_blkfilter: { parameters: ["i32", "i32"], result: "void" },
    fake_set_module: { parameters: ["i32"], result: "void" },
    fake_set_snapshots: { parameters: ["i32"], result: "void" },
    fake_fail: { parameters: ["u64", "i32", "i32"], result: "void" },
    fake_set_map: { parameters: ["i32", "u32", "u8", "u32"], result: "i32" },
    fake_queue_event: { parameters: ["u32", "i64", "buffer", "u32"], result: "void" },
    fake_open_fds: { parameters: [], result: "i32" },
  } as const,
).symbols;

const IOCTL_BLKSNAP_FILTER_ATTACH = 0xc0385640n;
const SUBCMD_CBTMAP = 0x101n;
const EBUSY = 16;
const EAGAIN = 11;
const EFAULT = 14;
const ENOTTY = 25;

let openFds = 0;
defineBindingContract({
  name: "fake",
  devices: ["/dev/fakeblk0", "/dev/fakeblk1", "/dev/fakeblk2", "/dev/fakeblk3"],
  capacity: 64n << 20n,
  firstDevice: { major: 254, minor: 0 },
  notBlockDevices: ["/fake/file", "/fake/chr"],
  missing: "/nonexistent/blksnap",
  transport: "control",
  diffStorage: "/tmp",
  limit: 1 << 30,
  badStorage: "/dev/null",
  setUp(): void {
    fake.fake_reset();
    fake.fake_set_snapshots(1);
    openFds = fake.fake_open_fds();
  },
  tearDown(): void {
    assert.equal(fake.fake_open_fds(), openFds, "every handle was released");
  },
  async withoutModule(fn): Promise<void> {
    fake.fake_set_module(0);
    try {
      await fn();
    } finally {
      fake.fake_set_module(1);
    }
  },
  waitForImage: () => Promise.resolve(),
});

function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test(name, async () => {
    fake.fake_reset();
    const before = fake.fake_open_fds();
    await fn();
    assert.equal(fake.fake_open_fds(), before, "every handle was released");
  });
}

test("Tracker reads the fake's geometry and map; a failed CBTMAP is its errno", async () => {
  using tracker = Tracker.open("/dev/fakeblk0");
  assert.equal(tracker.attach(), true);
  const info = tracker.cbtInfo();
  assert.equal(info.blockSize, 65536);
  assert.equal(info.blockCount, 1024);
  fake.fake_set_map(0, 10, 3, 5);
  fake.fake_set_map(0, 1023, 1, 1);
  const map = tracker.readCbtMap();
  assert.deepEqual(map.changedBlocks(0), [10, 11, 12, 13, 14, 1023]);
  assert.deepEqual(map.changedExtents(2), [{ offset: 655360n, length: 327680n }]);
  const again = await tracker.readCbtMapAsync();
  assert.deepEqual(again.toBytes(), map.toBytes());
  fake.fake_fail(SUBCMD_CBTMAP, EFAULT, 1);
  assert.equal(errorCode(() => tracker.readCbtMap()), "EFAULT");
  // EAGAIN (a take overtook the request) is read again, 3 times at most.
  fake.fake_fail(SUBCMD_CBTMAP, EAGAIN, 2);
  assert.deepEqual(tracker.readCbtMap().toBytes(), map.toBytes());
  fake.fake_fail(SUBCMD_CBTMAP, EAGAIN, 2);
  assert.deepEqual((await tracker.readCbtMapAsync()).toBytes(), map.toBytes());
  fake.fake_fail(SUBCMD_CBTMAP, EAGAIN, 3);
  assert.equal(errorCode(() => tracker.readCbtMap()), "EAGAIN");
  fake.fake_fail(SUBCMD_CBTMAP, EAGAIN, 3);
  assert.equal(await asyncErrorCode(() => tracker.readCbtMapAsync()), "EAGAIN");
  tracker.detach();
  assert.match(String(Deno.inspect(tracker)), /Tracker \{ device: "\/dev\/fakeblk0", dev: 254:0/);
});

test("Tracker errors carry the kernel's errno, code and op", () => {
  using tracker = Tracker.open("/dev/fakeblk0");
  fake.fake_fail(IOCTL_BLKSNAP_FILTER_ATTACH, EBUSY, 1);
  try {
    tracker.attach();
    assert.fail("no error");
  } catch (err) {
    assert.ok(err instanceof BlksnapError);
    assert.equal(err.errno, EBUSY);
    assert.equal(err.code, "EBUSY");
    assert.equal(err.op, "Tracker.attach");
    assert.match(err.message, /\/dev\/fakeblk0/);
  }
  fake.fake_set_module(0);
  assert.equal(errorCode(() => tracker.attach()), "ENOENT");
});

test("Tracker uses blkfilter where the kernel has it", () => {
  fake.fake_set_blkfilter(1, 0);
  using tracker = Tracker.open("/dev/fakeblk3");
  assert.equal(tracker.transport, "blkfilter");
  assert.equal(tracker.attach(), true);
  assert.equal(tracker.cbtInfo().blockCount, 1024);
  tracker.detach();
  fake.fake_set_blkfilter(0, ENOTTY);
});

async function collectGarbage(until: () => boolean): Promise<boolean> {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run with --v8-flags=--expose-gc");
  for (let i = 0; i < 100 && !until(); i++) {
    gc();
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  return until();
}

test("a dropped Tracker is released by the garbage collector", async () => {
  const before = fake.fake_open_fds();
  (() => {
    for (let i = 0; i < 4; i++) Tracker.open(`/dev/fakeblk${i}`).attach();
  })();
  assert.ok(fake.fake_open_fds() > before);
  assert.ok(await collectGarbage(() => fake.fake_open_fds() === before));
});

test("Snapshot answers EOPNOTSUPP while the module has no snapshots", () => {
  using tracker = Tracker.open("/dev/fakeblk1");
  tracker.attach();
  assert.equal(
    errorCode(() => Snapshot.create({ diffStorage: "/tmp", limit: 1 << 20 })),
    "EOPNOTSUPP",
  );
  assert.equal(errorCode(() => Snapshot.collect()), "EOPNOTSUPP");
  tracker.detach();
});

test("Snapshot.waitEvent() decodes the module's events", async () => {
  fake.fake_set_snapshots(1);
  using tracker = Tracker.open("/dev/fakeblk1");
  tracker.attach();
  using snapshot = Snapshot.create({ diffStorage: "/tmp", limit: 1n << 30n, devices: [tracker] });
  snapshot.take();
  assert.equal(snapshot.imagePath("/dev/fakeblk1"), "/dev/blksnap-254-1");
  assert.equal(await snapshot.waitEvent(5), null);
  const corrupted = new Uint8Array(12);
  const view = new DataView(corrupted.buffer);
  view.setUint32(0, 254, true);
  view.setUint32(4, 1, true);
  view.setInt32(8, -28, true);
  fake.fake_queue_event(0, 123456789n, corrupted, 12);
  assert.deepEqual(
    await snapshot.waitEvent(5),
    {
      type: "corrupted",
      code: 0,
      time: 123456789n,
      device: { major: 254, minor: 1 },
      errorCode: -28,
      error: "ENOSPC",
    } satisfies SnapshotEvent,
  );
  const noSpace = new Uint8Array(8);
  new DataView(noSpace.buffer).setBigUint64(0, 2048n, true);
  fake.fake_queue_event(1, 5n, noSpace, 8);
  assert.deepEqual(await snapshot.waitEvent(5), {
    type: "noSpace",
    code: 1,
    time: 5n,
    requestedSectors: 2048n,
  });
  fake.fake_queue_event(7, 6n, null, 0);
  const unknown = await snapshot.waitEvent(5);
  assert.equal(unknown?.type, "unknown");
  assert.equal(unknown?.code, 7);
  snapshot.destroy();
  tracker.detach();
});

test("a dropped Snapshot is closed, not destroyed, by the garbage collector", async () => {
  fake.fake_set_snapshots(1);
  const before = fake.fake_open_fds();
  let id = "";
  (() => {
    id = Snapshot.create({ diffStorage: "/tmp", limit: 4096 }).id;
  })();
  assert.ok(await collectGarbage(() => fake.fake_open_fds() === before));
  assert.deepEqual(Snapshot.collect(), [id]);
  Snapshot.open(id).destroy();
});

test("Session watches events and reports a corrupted snapshot", async () => {
  fake.fake_set_snapshots(1);
  const seen: SnapshotEvent[] = [];
  {
    await using session = await Session.start({
      devices: ["/dev/fakeblk2", "/dev/fakeblk3"],
      diffStorage: "/tmp",
      limit: 1n << 30n,
      pollMs: 5,
      onEvent: (event) => seen.push(event),
    });
    assert.equal(session.corrupted, false);
    const payload = new Uint8Array(12);
    new DataView(payload.buffer).setInt32(8, -5, true);
    fake.fake_queue_event(0, 1n, payload, 12);
    for (let i = 0; i < 200 && seen.length === 0; i++) {
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    assert.equal(seen.length, 1);
    assert.equal(session.events.length, 1);
    assert.equal(session.corrupted, true);
  }
  assert.deepEqual(Snapshot.collect(), []);
});

test("Session.start() is EOPNOTSUPP while the module has no snapshots", async () => {
  await assert.rejects(
    () => Session.start({ devices: ["/dev/fakeblk0"], diffStorage: "/tmp", limit: 4096 }),
    (err: unknown) => err instanceof BlksnapError && err.code === "EOPNOTSUPP",
  );
});

// The public API against libblksnap linked with the fake system call layer
// (tests/native/fake_sys.c): errno propagation into BlksnapError, closed
// handles, the transports, snapshots, Session, and the release of dropped
// handles by the garbage collector.
//
// Not a *_test.ts file: tests/unit/binding_fake_test.ts runs it in a child
// `deno test --v8-flags=--expose-gc` with BLKSNAP_LIB set to the fake build.
import assert from "node:assert/strict";
import {
  BlksnapError,
  moduleVersion,
  Session,
  Snapshot,
  type SnapshotEvent,
  Tracker,
} from "../../mod.ts";

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
const EFAULT = 14;
const ENOTTY = 25;

function errorCode(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  throw new assert.AssertionError({ message: "no error thrown" });
}

async function asyncErrorCode(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  throw new assert.AssertionError({ message: "no error thrown" });
}

function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test(name, async () => {
    fake.fake_reset();
    const before = fake.fake_open_fds();
    await fn();
    assert.equal(fake.fake_open_fds(), before, "every handle was released");
  });
}

test("moduleVersion() reads 2.0.0.0 and is ENOENT without the module", () => {
  assert.deepEqual(moduleVersion(), { major: 2, minor: 0, revision: 0, build: 0 });
  fake.fake_set_module(0);
  assert.equal(errorCode(() => moduleVersion()), "ENOENT");
});

test("Tracker.open() rejects what is not a block device", () => {
  assert.equal(errorCode(() => Tracker.open("/fake/file")), "ENOTBLK");
  assert.equal(errorCode(() => Tracker.open("/fake/chr")), "ENOTBLK");
  assert.equal(errorCode(() => Tracker.open("/nonexistent/blksnap")), "ENOENT");
  assert.throws(() => Tracker.open(""), TypeError);
  assert.throws(() => Tracker.open(42 as unknown as string), TypeError);
  assert.throws(() => Tracker.open("/dev/a\0b"), TypeError);
});

test("Tracker attaches, reads CBT info and map, detaches", async () => {
  using tracker = Tracker.open("/dev/fakeblk0");
  assert.equal(tracker.transport, "control");
  assert.equal(tracker.major, 254);
  assert.equal(tracker.minor, 0);
  assert.equal(tracker.device, "/dev/fakeblk0");
  assert.equal(errorCode(() => tracker.cbtInfo()), "ENOENT");
  assert.equal(tracker.attach(), true);
  assert.equal(tracker.attach(), false);
  const info = tracker.cbtInfo();
  assert.deepEqual(info, {
    deviceCapacity: 64n << 20n,
    blockSize: 65536,
    blockCount: 1024,
    generationId: "a0a1a2a3-a4a5-a6a7-a8a9-aaabacadaeaf",
    changesNumber: 0,
  });
  fake.fake_set_map(0, 10, 3, 5);
  fake.fake_set_map(0, 1023, 1, 1);
  const map = tracker.readCbtMap();
  assert.deepEqual(map.changedBlocks(0), [10, 11, 12, 13, 14, 1023]);
  assert.deepEqual(map.changedExtents(2), [{ offset: 655360n, length: 327680n }]);
  const again = await tracker.readCbtMapAsync();
  assert.deepEqual(again.toBytes(), map.toBytes());
  fake.fake_fail(SUBCMD_CBTMAP, EFAULT, 1);
  assert.equal(errorCode(() => tracker.readCbtMap()), "EFAULT");
  tracker.detach();
  assert.equal(errorCode(() => tracker.detach()), "ENOENT");
  assert.match(String(Deno.inspect(tracker)), /Tracker \{ device: "\/dev\/fakeblk0", dev: 254:0/);
});

test("Tracker.markDirty() validates ranges before any call and marks blocks", () => {
  using tracker = Tracker.open("/dev/fakeblk1");
  tracker.attach();
  assert.throws(() => tracker.markDirty([{ sector: 1, count: 1n } as never]), TypeError);
  assert.throws(() => tracker.markDirty([{ sector: -1n, count: 1n }]), RangeError);
  assert.throws(() => tracker.markDirty([{ sector: 1n << 64n, count: 0n }]), RangeError);
  assert.throws(() => tracker.markDirty("x" as never), TypeError);
  tracker.markDirty([]);
  tracker.markDirty([{ sector: 0n, count: 1n }]);
  assert.equal(
    errorCode(() => tracker.markDirty([{ sector: (64n << 20n) / 512n, count: 8n }])),
    "EINVAL",
  );
  tracker.detach();
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

test("a closed Tracker throws EBADF and closes idempotently", async () => {
  const tracker = Tracker.open("/dev/fakeblk0");
  tracker.close();
  tracker.close();
  assert.equal(tracker.closed, true);
  assert.equal(tracker.unsafeHandle, null);
  assert.equal(errorCode(() => tracker.attach()), "EBADF");
  assert.equal(errorCode(() => tracker.detach()), "EBADF");
  assert.equal(errorCode(() => tracker.cbtInfo()), "EBADF");
  assert.equal(errorCode(() => tracker.readCbtMap()), "EBADF");
  assert.equal(errorCode(() => tracker.markDirty([])), "EBADF");
  assert.equal(errorCode(() => tracker.snapshotInfo()), "EBADF");
  assert.equal(await asyncErrorCode(() => tracker.readCbtMapAsync()), "EBADF");
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
    errorCode(() => Snapshot.create({ diffStorage: "/tmp/diff", limit: 1 << 20 })),
    "EOPNOTSUPP",
  );
  assert.equal(errorCode(() => Snapshot.collect()), "EOPNOTSUPP");
  tracker.detach();
});

test("Snapshot validates its arguments with TypeError and RangeError", async () => {
  assert.throws(() => Snapshot.create({ diffStorage: "", limit: 1 }), TypeError);
  assert.throws(() => Snapshot.create({ diffStorage: "/tmp", limit: 0 }), RangeError);
  assert.throws(() => Snapshot.create({ diffStorage: "/tmp", limit: 1.5 }), RangeError);
  assert.throws(() => Snapshot.create({ diffStorage: "/tmp", limit: "1" as never }), TypeError);
  assert.throws(
    () => Snapshot.create({ diffStorage: "/tmp", limit: 1, devices: [3 as never] }),
    TypeError,
  );
  assert.throws(() => Snapshot.open("not-a-uuid"), TypeError);
  fake.fake_set_snapshots(1);
  using snapshot = Snapshot.create({ diffStorage: "/tmp/diff", limit: 1n << 30n });
  await assert.rejects(() => snapshot.waitEvent(-1), RangeError);
  await assert.rejects(() => snapshot.waitEvent(2 ** 32), RangeError);
  assert.throws(() => snapshot.add(""), TypeError);
});

test("Snapshot create, add, take, info, image, events and destroy", async () => {
  fake.fake_set_snapshots(1);
  using tracker = Tracker.open("/dev/fakeblk1");
  tracker.attach();
  const snapshot = Snapshot.create({
    diffStorage: "/tmp/diff",
    limit: 1n << 30n,
    devices: [tracker],
  });
  assert.match(snapshot.id, /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
  assert.ok(snapshot.owned);
  assert.deepEqual(Snapshot.collect(), [snapshot.id]);
  assert.equal(errorCode(() => snapshot.add("/dev/fakeblk1")), "EALREADY");
  assert.deepEqual(snapshot.info(tracker), { errorCode: 0, error: null, image: null });
  assert.equal(errorCode(() => snapshot.imagePath(tracker)), "ENODEV");
  snapshot.take();
  assert.equal(errorCode(() => snapshot.take()), "EALREADY");
  assert.equal(snapshot.imagePath("/dev/fakeblk1"), "/dev/blksnap-254-1");
  assert.equal(tracker.cbtInfo().changesNumber, 1);
  tracker.markDirty([{ sector: 0n, count: 1n }]);
  assert.deepEqual(tracker.readCbtMap().changedBlocks(0), [0]);

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

  const other = Snapshot.open(snapshot.id);
  assert.equal(other.owned, false);
  snapshot.destroy();
  assert.equal(snapshot.closed, true);
  assert.equal(await asyncErrorCode(() => snapshot.waitEvent(5)), "EBADF");
  assert.equal(await asyncErrorCode(() => other.waitEvent(5)), "ESRCH");
  assert.equal(errorCode(() => other.destroy()), "ENODEV");
  assert.deepEqual(Snapshot.collect(), []);
  tracker.detach();
});

test("Snapshot dispose destroys only an owned snapshot", () => {
  fake.fake_set_snapshots(1);
  let id: string;
  {
    using created = Snapshot.create({ diffStorage: "/tmp/diff", limit: 4096 });
    id = created.id;
    {
      using opened = Snapshot.open(id);
      assert.equal(opened.owned, false);
    }
    assert.deepEqual(Snapshot.collect(), [id]);
  }
  assert.deepEqual(Snapshot.collect(), []);
  const kept = Snapshot.create({ diffStorage: "/tmp/diff", limit: 4096 });
  kept.close();
  assert.deepEqual(Snapshot.collect(), [kept.id]);
  Snapshot.open(kept.id).destroy();
});

test("Snapshot.create() destroys the new snapshot when adding fails", () => {
  fake.fake_set_snapshots(1);
  assert.equal(
    errorCode(() =>
      Snapshot.create({ diffStorage: "/tmp/diff", limit: 4096, devices: ["/dev/fakeblk2"] })
    ),
    "ENOENT",
  );
  assert.deepEqual(Snapshot.collect(), []);
});

test("a dropped Snapshot is closed, not destroyed, by the garbage collector", async () => {
  fake.fake_set_snapshots(1);
  const before = fake.fake_open_fds();
  let id = "";
  (() => {
    id = Snapshot.create({ diffStorage: "/tmp/diff", limit: 4096 }).id;
  })();
  assert.ok(await collectGarbage(() => fake.fake_open_fds() === before));
  assert.deepEqual(Snapshot.collect(), [id]);
  Snapshot.open(id).destroy();
});

test("Session attaches, takes, watches events and destroys on dispose", async () => {
  fake.fake_set_snapshots(1);
  const seen: SnapshotEvent[] = [];
  let id: string;
  {
    await using session = await Session.start({
      devices: ["/dev/fakeblk2", "/dev/fakeblk3"],
      diffStorage: "/tmp/diff",
      limit: 1n << 30n,
      pollMs: 5,
      onEvent: (event) => seen.push(event),
    });
    id = session.snapshot.id;
    assert.deepEqual(session.devices, ["/dev/fakeblk2", "/dev/fakeblk3"]);
    assert.deepEqual(session.newlyAttached, ["/dev/fakeblk2", "/dev/fakeblk3"]);
    assert.equal(session.imagePath("/dev/fakeblk3"), "/dev/blksnap-254-3");
    assert.equal(session.cbtInfo("/dev/fakeblk2").changesNumber, 1);
    assert.equal(session.cbtMap("/dev/fakeblk2").blockCount, 1024);
    assert.equal(session.corrupted, false);
    assert.throws(() => session.imagePath("/dev/other"), RangeError);
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
  assert.ok(!Snapshot.collect().includes(id));
  // The trackers stay attached for the next incremental backup.
  using tracker = Tracker.open("/dev/fakeblk2");
  assert.equal(tracker.attach(), false);
});

test("Session.start() undoes what it did when a step fails", async () => {
  await assert.rejects(
    () => Session.start({ devices: ["/dev/fakeblk0"], diffStorage: "/tmp/diff", limit: 4096 }),
    (err: unknown) => err instanceof BlksnapError && err.code === "EOPNOTSUPP",
  );
  await assert.rejects(
    () => Session.start({ devices: [], diffStorage: "/tmp/diff", limit: 4096 }),
    TypeError,
  );
  await assert.rejects(
    () => Session.start({ devices: ["/fake/file"], diffStorage: "/tmp/diff", limit: 4096 }),
    (err: unknown) => err instanceof BlksnapError && err.code === "ENOTBLK",
  );
});

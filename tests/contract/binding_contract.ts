// The binding's contract: what the public API (Tracker, CbtMap, Snapshot,
// Session, moduleVersion) answers, result by result and errno by errno, on
// every environment it runs on. Two environments run these same cases:
//  - tests/unit/_fake_binding.ts: libblksnap linked with the fake system
//    call layer (tests/native/fake_sys.c), in the unit tier;
//  - tests/vm/suites/30-binding_test.ts: the real module in the VM, over the
//    device fds, and over the control device as suite 31.
// So the fake layer cannot drift from the kernel: a case that one side
// answers differently fails there. The kernel is the truth for behaviour;
// docs/kernel-abi.md and the JSDoc state the errnos these cases expect.
// A case that only one side can check (real writes and image contents, the
// fake's injected failures and events) stays in that side's file.
import assert from "node:assert/strict";
import {
  BlksnapError,
  moduleVersion,
  Session,
  Snapshot,
  type SnapshotEvent,
  Tracker,
} from "../../mod.ts";

/** What an environment gives the contract's cases. */
export interface BindingEnvironment {
  /** Names the environment in the test names ("fake", "kernel"). */
  readonly name: string;
  /**
   * Four block devices the cases attach, snapshot and detach; setUp()
   * leaves them detached and nothing else writes to them.
   */
  readonly devices: readonly [string, string, string, string];
  /** The size of every one of `devices`, in bytes. */
  readonly capacity: bigint;
  /** The device number `Tracker.open(devices[0])` must report. */
  readonly firstDevice: { readonly major: number; readonly minor: number };
  /** Paths that exist and are not block devices. */
  readonly notBlockDevices: readonly string[];
  /** A path that does not exist. */
  readonly missing: string;
  /** The transport `Tracker.open()` must choose. */
  readonly transport: "blkfilter" | "control";
  /** A directory for difference storage, and the limit to give it. */
  readonly diffStorage: string;
  readonly limit: number;
  /** A path that exists and cannot be difference storage (a character device). */
  readonly badStorage: string;
  /** Brings the environment to a known state: no tracker, no snapshot. */
  setUp(): void | Promise<void>;
  /** Checks after each case (the fake: every handle was released). */
  tearDown(): void | Promise<void>;
  /** Runs `fn` with the module unloaded, then loads it again. */
  withoutModule(fn: () => void | Promise<void>): Promise<void>;
  /** Waits until an image's device node exists (udev, in the VM). */
  waitForImage(path: string): Promise<void>;
}

/** The `code` of the {@linkcode BlksnapError} `call` throws, or "no error". */
export function errorCode(call: () => unknown): string {
  try {
    call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  return "no error";
}

/** {@linkcode errorCode} of an async call. */
export async function asyncErrorCode(call: () => Promise<unknown>): Promise<string> {
  try {
    await call();
  } catch (err) {
    if (err instanceof BlksnapError) return err.code;
    throw err;
  }
  return "no error";
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** Registers the contract's cases with `Deno.test`, run in `env`. */
export function defineBindingContract(env: BindingEnvironment): void {
  const [d0, d1, d2, d3] = env.devices;
  const test = (name: string, fn: () => void | Promise<void>): void => {
    Deno.test(`contract (${env.name}): ${name}`, async () => {
      await env.setUp();
      await fn();
      await env.tearDown();
    });
  };
  const create = (devices: (string | Tracker)[] = []): Snapshot =>
    Snapshot.create({ diffStorage: env.diffStorage, limit: env.limit, devices });

  test("moduleVersion() reports 2.0.0.0", () => {
    assert.deepEqual(moduleVersion(), { major: 2, minor: 0, revision: 0, build: 0 });
  });

  test("Tracker.open() refuses what is not a block device", () => {
    for (const path of env.notBlockDevices) {
      assert.equal(errorCode(() => Tracker.open(path)), "ENOTBLK", path);
    }
    assert.equal(errorCode(() => Tracker.open(env.missing)), "ENOENT");
    assert.throws(() => Tracker.open(""), TypeError);
    assert.throws(() => Tracker.open(42 as unknown as string), TypeError);
    assert.throws(() => Tracker.open("/dev/a\0b"), TypeError);
  });

  test("Tracker.open() reports the device, its number and the transport", () => {
    using tracker = Tracker.open(d0);
    assert.equal(tracker.device, d0);
    assert.equal(tracker.major, env.firstDevice.major);
    assert.equal(tracker.minor, env.firstDevice.minor);
    assert.equal(tracker.transport, env.transport);
    assert.equal(tracker.closed, false);
  });

  test("an unattached device: detach, cbtInfo, readCbtMap, snapshotInfo are ENOENT", async () => {
    using tracker = Tracker.open(d0);
    assert.equal(errorCode(() => tracker.detach()), "ENOENT");
    assert.equal(errorCode(() => tracker.cbtInfo()), "ENOENT");
    assert.equal(errorCode(() => tracker.readCbtMap()), "ENOENT");
    assert.equal(await asyncErrorCode(() => tracker.readCbtMapAsync()), "ENOENT");
    assert.equal(errorCode(() => tracker.markDirty([{ sector: 0n, count: 1n }])), "ENOENT");
    assert.equal(errorCode(() => tracker.snapshotInfo()), "ENOENT");
  });

  test("attach() is true then false; cbtInfo() describes the map; re-attach is a new generation", () => {
    using tracker = Tracker.open(d0);
    assert.equal(tracker.attach(), true);
    assert.equal(tracker.attach(), false);
    const info = tracker.cbtInfo();
    assert.equal(info.deviceCapacity, env.capacity);
    assert.ok(info.blockSize >= 4096 && (info.blockSize & (info.blockSize - 1)) === 0);
    const bs = BigInt(info.blockSize);
    assert.equal(BigInt(info.blockCount), (info.deviceCapacity + bs - 1n) / bs);
    assert.match(info.generationId, UUID);
    assert.notEqual(info.generationId, "00000000-0000-0000-0000-000000000000");
    assert.equal(info.changesNumber, 0);
    tracker.detach();
    assert.equal(errorCode(() => tracker.detach()), "ENOENT");
    assert.equal(tracker.attach(), true);
    assert.notEqual(tracker.cbtInfo().generationId, info.generationId, "a new generation");
    tracker.detach();
  });

  test("readCbtMap() of a fresh tracker: no changes, sync and async alike", async () => {
    using tracker = Tracker.open(d0);
    tracker.attach();
    const info = tracker.cbtInfo();
    const map = tracker.readCbtMap();
    assert.deepEqual(map.info, info);
    assert.equal(map.blockCount, info.blockCount);
    assert.equal(map.changedBytes(0), 0n);
    assert.deepEqual(map.changedBlocks(0), []);
    const again = await tracker.readCbtMapAsync();
    assert.deepEqual(again.toBytes(), map.toBytes());
    tracker.detach();
  });

  test("markDirty() validates ranges; the kernel refuses ranges past the end (EINVAL)", () => {
    using tracker = Tracker.open(d0);
    tracker.attach();
    assert.throws(() => tracker.markDirty([{ sector: 1, count: 1n } as never]), TypeError);
    assert.throws(() => tracker.markDirty([{ sector: -1n, count: 1n }]), RangeError);
    assert.throws(() => tracker.markDirty([{ sector: 1n << 64n, count: 0n }]), RangeError);
    assert.throws(() => tracker.markDirty("x" as never), TypeError);
    tracker.markDirty([]);
    tracker.markDirty([{ sector: 0n, count: 8n }, { sector: 2048n, count: 4096n }]);
    const end = env.capacity / 512n;
    assert.equal(errorCode(() => tracker.markDirty([{ sector: end, count: 8n }])), "EINVAL");
    assert.equal(errorCode(() => tracker.markDirty([{ sector: end - 1n, count: 2n }])), "EINVAL");
    assert.equal(
      errorCode(() => tracker.markDirty([{ sector: (1n << 64n) - 1n, count: 1n }])),
      "EINVAL",
    );
    tracker.detach();
  });

  test("markDirty() shows in the read map at once and in the next interval after a take", () => {
    using tracker = Tracker.open(d1);
    tracker.attach();
    {
      using first = create([tracker]);
      first.take();
    }
    const saved = tracker.cbtInfo();
    assert.equal(saved.changesNumber, 1);
    const bs = BigInt(saved.blockSize);
    const sectors = (block: bigint): bigint => (block * bs) / 512n;
    tracker.markDirty([
      { sector: sectors(3n), count: 1n },
      { sector: sectors(10n) + 1n, count: sectors(2n) }, // blocks 10..12
    ]);
    // The read map is marked with the last take's number: the next backup
    // copies these blocks whatever it compares with.
    assert.deepEqual(tracker.readCbtMap().changedBlocks(saved.changesNumber - 1), [3, 10, 11, 12]);
    {
      using second = create([tracker]);
      second.take();
    }
    const map = tracker.readCbtMap();
    assert.equal(map.generationId, saved.generationId);
    assert.equal(map.changesNumber, saved.changesNumber + 1);
    assert.deepEqual(map.changedBlocks(saved.changesNumber), [3, 10, 11, 12]);
    assert.deepEqual(map.changedExtents(saved.changesNumber), [
      { offset: 3n * bs, length: bs },
      { offset: 10n * bs, length: 3n * bs },
    ]);
    tracker.detach();
  });

  test("a closed Tracker throws EBADF everywhere; close() is idempotent", async () => {
    const tracker = Tracker.open(d0);
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

  test("Snapshot validates its arguments with TypeError and RangeError", async () => {
    assert.throws(() => Snapshot.create({ diffStorage: "", limit: 1 }), TypeError);
    assert.throws(() => Snapshot.create({ diffStorage: env.diffStorage, limit: 0 }), RangeError);
    assert.throws(() => Snapshot.create({ diffStorage: env.diffStorage, limit: 1.5 }), RangeError);
    assert.throws(
      () => Snapshot.create({ diffStorage: env.diffStorage, limit: "1" as never }),
      TypeError,
    );
    assert.throws(
      () => Snapshot.create({ diffStorage: env.diffStorage, limit: 1, devices: [3 as never] }),
      TypeError,
    );
    assert.throws(() => Snapshot.open("not-a-uuid"), TypeError);
    using snapshot = create();
    await assert.rejects(() => snapshot.waitEvent(-1), RangeError);
    await assert.rejects(() => snapshot.waitEvent(2 ** 32), RangeError);
    assert.throws(() => snapshot.add(""), TypeError);
  });

  test("Snapshot.create() refuses storage that is missing (ENOENT) or not a file, directory or disk (EINVAL)", () => {
    assert.equal(
      errorCode(() => Snapshot.create({ diffStorage: env.missing, limit: env.limit })),
      "ENOENT",
    );
    assert.equal(
      errorCode(() => Snapshot.create({ diffStorage: env.badStorage, limit: env.limit })),
      "EINVAL",
    );
  });

  test("Snapshot create, add, info, take, image, events, destroy", async () => {
    using tracker = Tracker.open(d1);
    tracker.attach();
    const snapshot = create([tracker]);
    assert.match(snapshot.id, UUID);
    assert.ok(snapshot.owned);
    assert.ok(Snapshot.collect().includes(snapshot.id));
    assert.equal(errorCode(() => snapshot.add(d1)), "EALREADY");
    assert.deepEqual(snapshot.info(tracker), { errorCode: 0, error: null, image: null });
    assert.equal(errorCode(() => snapshot.imagePath(tracker)), "ENODEV");
    snapshot.take();
    assert.equal(errorCode(() => snapshot.take()), "EALREADY");
    const info = snapshot.info(d1);
    assert.equal(info.errorCode, 0);
    assert.equal(info.error, null);
    assert.ok(info.image);
    assert.deepEqual(tracker.snapshotInfo(), info);
    const image = snapshot.imagePath(tracker);
    assert.equal(image, `/dev/${info.image}`);
    await env.waitForImage(image);
    assert.equal(tracker.cbtInfo().changesNumber, 1);
    assert.equal(await snapshot.waitEvent(10), null);
    const other = Snapshot.open(snapshot.id);
    assert.equal(other.owned, false);
    snapshot.destroy();
    assert.equal(snapshot.closed, true);
    assert.equal(await asyncErrorCode(() => snapshot.waitEvent(5)), "EBADF");
    assert.equal(await asyncErrorCode(() => other.waitEvent(5)), "ESRCH");
    assert.equal(errorCode(() => other.destroy()), "ENODEV");
    assert.ok(!Snapshot.collect().includes(snapshot.id));
    // Outside a snapshot: no error and no image (not an errno).
    assert.deepEqual(tracker.snapshotInfo(), { errorCode: 0, error: null, image: null });
    tracker.detach();
  });

  test("Snapshot errors: unknown id, empty snapshot, unattached device, another snapshot", async () => {
    const ghost = Snapshot.open("01234567-89ab-cdef-0123-456789abcdef");
    assert.equal(ghost.owned, false);
    assert.equal(errorCode(() => ghost.take()), "ESRCH");
    assert.equal(await asyncErrorCode(() => ghost.waitEvent(10)), "ESRCH");
    using tracker = Tracker.open(d2);
    tracker.attach();
    assert.equal(errorCode(() => ghost.add(tracker)), "ESRCH");
    assert.equal(errorCode(() => ghost.destroy()), "ENODEV");
    assert.equal(ghost.closed, true, "a failed destroy still releases the handle");
    const empty = create();
    assert.equal(errorCode(() => empty.add(d3)), "ENOENT");
    assert.equal(errorCode(() => empty.take()), "ENODEV");
    empty.add(tracker);
    {
      using second = create();
      assert.equal(errorCode(() => second.add(tracker)), "EBUSY");
    }
    const opened = Snapshot.open(empty.id);
    empty.destroy();
    assert.equal(await asyncErrorCode(() => opened.waitEvent(10)), "ESRCH");
    opened.close();
    tracker.detach();
  });

  test("detach of a device in a snapshot: the snapshot forgets it", () => {
    using tracker = Tracker.open(d2);
    tracker.attach();
    using snapshot = create([tracker]);
    tracker.detach();
    assert.equal(errorCode(() => snapshot.info(tracker)), "ENOENT");
    assert.equal(errorCode(() => snapshot.take()), "ENODEV");
  });

  test("Snapshot dispose destroys an owned snapshot and only closes an opened one", () => {
    let id: string;
    {
      using owned = create();
      id = owned.id;
      {
        using opened = Snapshot.open(id);
        assert.equal(opened.owned, false);
        assert.equal(opened.id, id);
      }
      assert.ok(Snapshot.collect().includes(id));
    }
    assert.ok(!Snapshot.collect().includes(id));
    const kept = create();
    kept.close();
    assert.ok(Snapshot.collect().includes(kept.id));
    Snapshot.open(kept.id).destroy();
    assert.ok(!Snapshot.collect().includes(kept.id));
  });

  test("Snapshot.create() destroys the new snapshot when adding a device fails", () => {
    const before = Snapshot.collect();
    assert.equal(errorCode(() => create([d2])), "ENOENT");
    assert.deepEqual(Snapshot.collect(), before);
  });

  test("Session: attach, take, images, maps; destroy on dispose, trackers stay", async () => {
    const events: SnapshotEvent[] = [];
    let id: string;
    {
      await using session = await Session.start({
        devices: [d2, d3],
        diffStorage: env.diffStorage,
        limit: env.limit,
        pollMs: 20,
        onEvent: (event) => events.push(event),
      });
      id = session.snapshot.id;
      assert.deepEqual(session.devices, [d2, d3]);
      assert.deepEqual(session.newlyAttached, [d2, d3]);
      const image = session.imagePath(d3);
      assert.equal(image, `/dev/${session.snapshot.info(d3).image}`);
      await env.waitForImage(image);
      assert.equal(session.cbtInfo(d2).changesNumber, 1);
      assert.equal(session.cbtMap(d3).blockCount, session.cbtInfo(d3).blockCount);
      assert.equal(session.corrupted, false);
      assert.throws(() => session.imagePath(env.missing), RangeError);
      await new Promise((resolve) => setTimeout(resolve, 60));
    }
    assert.deepEqual(events, []);
    assert.ok(!Snapshot.collect().includes(id));
    for (const device of [d2, d3]) {
      using tracker = Tracker.open(device);
      assert.equal(tracker.attach(), false, "trackers stay attached after the session");
      tracker.detach();
    }
  });

  test("Session.start() refuses bad devices and leaves no snapshot", async () => {
    const before = Snapshot.collect();
    const options = { diffStorage: env.diffStorage, limit: env.limit };
    await assert.rejects(() => Session.start({ ...options, devices: [] }), TypeError);
    const rejectsWith = (code: string) => (err: unknown) =>
      err instanceof BlksnapError && err.code === code;
    await assert.rejects(
      () => Session.start({ ...options, devices: [env.notBlockDevices[0]] }),
      rejectsWith("ENOTBLK"),
    );
    await assert.rejects(
      () => Session.start({ ...options, devices: [d0, env.missing] }),
      rejectsWith("ENOENT"),
    );
    await assert.rejects(
      () => Session.start({ diffStorage: env.badStorage, limit: env.limit, devices: [d0] }),
      rejectsWith("EINVAL"),
    );
    assert.deepEqual(Snapshot.collect(), before);
  });

  test("without the module: moduleVersion(), attach and collect are ENOENT", async () => {
    await env.withoutModule(() => {
      assert.equal(errorCode(() => moduleVersion()), "ENOENT");
      using tracker = Tracker.open(d0);
      assert.equal(errorCode(() => tracker.attach()), "ENOENT");
      assert.equal(errorCode(() => Snapshot.collect()), "ENOENT");
    });
    assert.deepEqual(moduleVersion(), { major: 2, minor: 0, revision: 0, build: 0 });
  });
}

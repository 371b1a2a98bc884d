// Calls the public API with bad arguments in a process that has no FFI
// permission: any native call would fail with BlksnapLibraryError, so a
// TypeError or RangeError proves the argument was checked first. Prints one
// JSON line per case: {"case": name, "error": constructor name}.
// Run by tests/unit/validation_test.ts.
import { CbtMap, Session, Snapshot, Tracker } from "../../mod.ts";

const cases: Record<string, () => unknown> = {
  "Tracker.open(42)": () => Tracker.open(42 as never),
  "Tracker.open('')": () => Tracker.open(""),
  "Tracker.open(NUL)": () => Tracker.open("/dev/sd\0a"),
  "Snapshot.create(null)": () => Snapshot.create(null as never),
  "Snapshot.create(no diffStorage)": () => Snapshot.create({ limit: 1 } as never),
  "Snapshot.create(limit 0)": () => Snapshot.create({ diffStorage: "/tmp", limit: 0 }),
  "Snapshot.create(limit -1n)": () => Snapshot.create({ diffStorage: "/tmp", limit: -1n }),
  "Snapshot.create(limit 2^64)": () => Snapshot.create({ diffStorage: "/tmp", limit: 1n << 64n }),
  "Snapshot.create(limit NaN)": () => Snapshot.create({ diffStorage: "/tmp", limit: NaN }),
  "Snapshot.create(devices: [1])": () =>
    Snapshot.create({ diffStorage: "/tmp", limit: 1, devices: [1 as never] }),
  "Snapshot.open('x')": () => Snapshot.open("x"),
  "Snapshot.open(1)": () => Snapshot.open(1 as never),
  "CbtMap(bad since)": () =>
    new CbtMap({
      deviceCapacity: 0n,
      blockSize: 512,
      blockCount: 0,
      generationId: "",
      changesNumber: 0,
    }, new Uint8Array(0)).changedExtents(300),
  "Session.start(devices [])": () => Session.start({ devices: [], diffStorage: "/tmp", limit: 1 }),
  "Session.start(duplicates)": () =>
    Session.start({ devices: ["/dev/a", "/dev/a"], diffStorage: "/tmp", limit: 1 }),
  "Session.start(pollMs 0)": () =>
    Session.start({ devices: ["/dev/a"], diffStorage: "/tmp", limit: 1, pollMs: 0 }),
  "Tracker.open(valid path) needs FFI": () => Tracker.open("/dev/null"),
};

for (const [name, call] of Object.entries(cases)) {
  let error = "none";
  try {
    await call();
  } catch (err) {
    error = err instanceof Error ? err.constructor.name : typeof err;
  }
  console.log(JSON.stringify({ case: name, error }));
}

// Run by 30-binding_test.ts with --v8-flags=--expose-gc: a Tracker dropped
// without close() must have its fds closed once the garbage collector has
// collected it: the device's, and the control device's when the tracker uses
// that transport (module loaded with blkfilter_ioctls=0). Prints "released" and exits 0.
import { Tracker } from "../../../mod.ts";

function openFds(): number {
  let n = 0;
  for (const entry of Deno.readDirSync("/proc/self/fd")) {
    try {
      const target = Deno.readLinkSync(`/proc/self/fd/${entry.name}`);
      if (target === "/dev/ram1" || target === "/dev/blksnap-control") n++;
    } catch {
      // the fd closed meanwhile
    }
  }
  return n;
}

const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error("run with --v8-flags=--expose-gc");
const before = openFds();
const expected = (() => {
  const tracker = Tracker.open("/dev/ram1");
  tracker.attach();
  tracker.cbtInfo();
  tracker.detach();
  return tracker.transport === "control" ? 2 : 1;
})();
const held = openFds();
if (held !== before + expected) {
  throw new Error(`expected ${expected} more fds while held, got ${held - before}`);
}
for (let i = 0; i < 100 && openFds() !== before; i++) {
  gc();
  await new Promise((resolve) => setTimeout(resolve, 10));
}
if (openFds() !== before) throw new Error(`${openFds() - before} fds still open after GC`);
console.log("released");

// BlksnapError and the one unwrap(): how native return codes become errors.
import assert from "node:assert/strict";
import { BlksnapError, BlksnapLibraryError } from "../../mod.ts";
import { errnoDescription, errnoName, errnoOf } from "../../lib/ffi/errno.ts";
import { closedError, unwrap } from "../../lib/ffi/unwrap.ts";

Deno.test("unwrap() returns non-negative codes unchanged", () => {
  assert.equal(unwrap(0, "op"), 0);
  assert.equal(unwrap(7, "op"), 7);
});

Deno.test("unwrap() turns -errno into a BlksnapError with errno, code and op", () => {
  const cases: [number, string][] = [
    [1, "EPERM"],
    [2, "ENOENT"],
    [3, "ESRCH"],
    [9, "EBADF"],
    [14, "EFAULT"],
    [15, "ENOTBLK"],
    [16, "EBUSY"],
    [19, "ENODEV"],
    [22, "EINVAL"],
    [25, "ENOTTY"],
    [28, "ENOSPC"],
    [61, "ENODATA"],
    [95, "EOPNOTSUPP"],
    [114, "EALREADY"],
  ];
  for (const [errno, code] of cases) {
    try {
      unwrap(-errno, "Tracker.attach", "/dev/ram0");
    } catch (e) {
      assert.ok(e instanceof BlksnapError);
      assert.ok(e instanceof Error);
      assert.equal(e.name, "BlksnapError");
      assert.equal(e.errno, errno);
      assert.equal(e.code, code);
      assert.equal(e.op, "Tracker.attach");
      assert.match(e.message, new RegExp(`^Tracker\\.attach failed: .+ \\(${code}\\): /dev/ram0$`));
    }
  }
});

Deno.test("BlksnapError names unknown errnos E<n> and keeps a cause", () => {
  const cause = new Error("inner");
  const err = new BlksnapError(4095, "op", { cause });
  assert.equal(err.code, "E4095");
  assert.equal(err.cause, cause);
  assert.equal(err.message, "op failed: unknown error 4095 (E4095)");
});

Deno.test("closedError() is EBADF naming what is closed", () => {
  const err = closedError("Tracker.cbtInfo", "tracker");
  assert.equal(err.code, "EBADF");
  assert.equal(err.op, "Tracker.cbtInfo");
  assert.match(err.message, /the tracker is closed$/);
});

Deno.test("errnoName(), errnoOf() and errnoDescription() agree", () => {
  for (let n = 1; n <= 133; n++) {
    const name = errnoName(n);
    if (name.startsWith("E") && !/^E\d+$/.test(name)) assert.equal(errnoOf(name), n);
  }
  assert.equal(errnoDescription(16), "device or resource busy");
  assert.equal(errnoOf("ENOPE"), undefined);
});

Deno.test("BlksnapLibraryError carries the paths tried", () => {
  const err = new BlksnapLibraryError("no", ["a: missing", "b: missing"]);
  assert.equal(err.name, "BlksnapLibraryError");
  assert.deepEqual(err.tried, ["a: missing", "b: missing"]);
});

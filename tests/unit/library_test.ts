// The libblksnap loader: search order, the error that lists what was tried,
// the ABI check. Uses an injected opener: no library is loaded.
import assert from "node:assert/strict";
import { BlksnapLibraryError } from "../../mod.ts";
import {
  LIB_SONAME,
  libraryCandidates,
  type LibraryOpener,
  openLibrary,
} from "../../lib/ffi/library.ts";
import type { BlksnapLibrary } from "../../lib/ffi/symbols.ts";

function fakeLibrary(version: number, closed: string[], path: string): BlksnapLibrary {
  return {
    symbols: { blksnap_lib_version: () => version },
    close: () => closed.push(path),
  } as unknown as BlksnapLibrary;
}

Deno.test("libraryCandidates() tries the local build, then the soname", () => {
  const found = libraryCandidates(undefined, "file:///repo/lib/ffi/library.ts");
  assert.deepEqual(found, [
    { path: "/repo/kmod/ctl/build/libblksnap.so.1", source: "local" },
    { path: LIB_SONAME, source: "system" },
  ]);
});

Deno.test("libraryCandidates() uses BLKSNAP_LIB alone when set", () => {
  assert.deepEqual(libraryCandidates("/opt/x.so", "file:///repo/lib/ffi/library.ts"), [
    { path: "/opt/x.so", source: "env" },
  ]);
  assert.equal(libraryCandidates("", "file:///r/lib/ffi/library.ts").length, 2);
});

Deno.test("libraryCandidates() skips the local build for a remote module", () => {
  assert.deepEqual(libraryCandidates(undefined, "https://example.com/lib/ffi/library.ts"), [
    { path: LIB_SONAME, source: "system" },
  ]);
});

Deno.test("openLibrary() error lists every path tried and how to build", () => {
  const open: LibraryOpener = (path) => {
    throw new Error(
      `Could not open library: Could not open library: ${path}: cannot open shared object file`,
    );
  };
  const candidates = libraryCandidates(undefined, "file:///repo/lib/ffi/library.ts");
  try {
    openLibrary(candidates, open);
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof BlksnapLibraryError);
    assert.equal(e.tried.length, 2);
    assert.match(e.message, /^libblksnap not found: build it with `deno task build:lib`/);
    assert.match(e.message, /deno task install/);
    assert.doesNotMatch(e.message, /Could not open library: Could not open library/);
    assert.match(e.message, /\/repo\/kmod\/ctl\/build\/libblksnap\.so\.1 \(local\)/);
    assert.match(e.message, /libblksnap\.so\.1 \(system\)/);
    assert.match(e.message, /set BLKSNAP_LIB/);
  }
});

Deno.test("openLibrary() for a remote module says how to install, not how to build", () => {
  const open: LibraryOpener = () => {
    throw new Error("Could not open library: libblksnap.so.1: cannot open shared object file");
  };
  const remote = libraryCandidates(undefined, "https://example.com/lib/ffi/library.ts");
  assert.throws(() => openLibrary(remote, open), (e: unknown) => {
    assert.ok(e instanceof BlksnapLibraryError);
    assert.doesNotMatch(e.message, /build:lib/);
    assert.match(e.message, /\/usr\/local\/lib and run ldconfig/);
    return true;
  });
});

Deno.test("openLibrary() with BLKSNAP_LIB says only it was tried", () => {
  const open: LibraryOpener = () => {
    throw new Error("nope");
  };
  try {
    openLibrary([{ path: "/x/lib.so", source: "env" }], open);
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof BlksnapLibraryError);
    assert.match(e.message, /BLKSNAP_LIB \(or --lib\) names \/x\/lib\.so, so only it was tried/);
    assert.deepEqual(e.tried, ["/x/lib.so (env): nope"]);
  }
});

Deno.test("openLibrary() rejects another major version and tries the next", () => {
  const closed: string[] = [];
  const open: LibraryOpener = (path) =>
    fakeLibrary(path === "old.so" ? 2 << 16 : (1 << 16) | (3 << 8), closed, path);
  const lib = openLibrary([
    { path: "old.so", source: "local" },
    { path: "new.so", source: "system" },
  ], open);
  assert.equal(lib.symbols.blksnap_lib_version(), (1 << 16) | (3 << 8));
  assert.deepEqual(closed, ["old.so"]);
  try {
    openLibrary([{ path: "old.so", source: "local" }], open);
    assert.fail("no error");
  } catch (e) {
    assert.ok(e instanceof BlksnapLibraryError);
    assert.match(e.tried[0], /version 2\.0\.0, this binding needs 1\.x/);
  }
});

Deno.test("openLibrary() without FFI permission says --allow-ffi", () => {
  const open: LibraryOpener = () => {
    throw new Deno.errors.NotCapable("Requires ffi access");
  };
  assert.throws(
    () => openLibrary([{ path: "a.so", source: "local" }], open),
    (e: unknown) => e instanceof BlksnapLibraryError && /--allow-ffi/.test(e.message),
  );
});

/**
 * Finding, opening and checking libblksnap.
 *
 * Search order, first match wins:
 *
 * 1. `BLKSNAP_LIB`, if set: that path and nothing else (an explicit choice
 *    that fails is an error, not a reason to load something else).
 * 2. The in-repository build, `kmod/ctl/build/libblksnap.so.1`, relative to
 *    this file (only when this module is loaded from a `file:` URL).
 * 3. The system soname `libblksnap.so.1`, through the dynamic loader's path.
 *
 * The library is opened on first use, never at import, so `CbtMap` and
 * argument checks work without `--allow-ffi`. Right after opening, its
 * `blksnap_lib_version()` must report major {@linkcode LIB_MAJOR}.
 *
 * @module
 */

import { BlksnapLibraryError } from "../errors.ts";
import { type BlksnapLibrary, symbols } from "./symbols.ts";

/** The environment variable naming the library to load. */
export const LIB_ENV = "BLKSNAP_LIB";
/** The library's soname. */
export const LIB_SONAME = "libblksnap.so.1";
/** The library major version this binding is written for. */
export const LIB_MAJOR = 1;
/** How to build the library in a clone, as the load error says it. */
export const BUILD_HINT = "build it with `deno task build:lib` (make -C kmod lib)";
/** How to install the library, as the load error says it. */
export const INSTALL_HINT = `install ${LIB_SONAME} where the loader finds it ` +
  "(`deno task install`, or copy it to /usr/local/lib and run ldconfig)";

/** One place the library may be. */
export interface LibraryCandidate {
  /** A path, or the soname for the system search. */
  path: string;
  /** Where the candidate came from. */
  source: "env" | "local" | "system";
}

/** Reads an environment variable; `undefined` without `--allow-env`. */
export function readEnv(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch (err) {
    if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
      return undefined;
    }
    throw err;
  }
}

/** The candidates in search order, for the given env value and module URL. */
export function libraryCandidates(
  env: string | undefined = readEnv(LIB_ENV),
  base: string = import.meta.url,
): LibraryCandidate[] {
  if (env !== undefined && env !== "") return [{ path: env, source: "env" }];
  const out: LibraryCandidate[] = [];
  const url = new URL("../../kmod/ctl/build/libblksnap.so.1", base);
  if (url.protocol === "file:") {
    out.push({ path: decodeURIComponent(url.pathname), source: "local" });
  }
  out.push({ path: LIB_SONAME, source: "system" });
  return out;
}

/** Opens a library file with the symbol table (injectable for tests). */
export type LibraryOpener = (path: string) => BlksnapLibrary;

const defaultOpener: LibraryOpener = (path) => Deno.dlopen(path, symbols);

function reason(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  // Deno repeats the prefix: "Could not open library: Could not open library: ...".
  return (text.split("\n")[0] ?? text).replace(/^(Could not open library: )+/, "");
}

/**
 * Opens the first candidate that loads and has major version
 * {@linkcode LIB_MAJOR}; otherwise throws {@linkcode BlksnapLibraryError}
 * listing each path and why it failed, and how to build the library.
 */
export function openLibrary(
  candidates: readonly LibraryCandidate[],
  open: LibraryOpener = defaultOpener,
): BlksnapLibrary {
  const tried: string[] = [];
  for (const candidate of candidates) {
    let lib: BlksnapLibrary;
    try {
      lib = open(candidate.path);
    } catch (err) {
      if (err instanceof Deno.errors.NotCapable || err instanceof Deno.errors.PermissionDenied) {
        throw new BlksnapLibraryError(
          "Loading libblksnap needs FFI permission: run with --allow-ffi",
          [`${candidate.path}: ${reason(err)}`],
          { cause: err },
        );
      }
      tried.push(`${candidate.path} (${candidate.source}): ${reason(err)}`);
      continue;
    }
    const version = lib.symbols.blksnap_lib_version();
    const major = version >>> 16;
    if (major !== LIB_MAJOR) {
      lib.close();
      tried.push(
        `${candidate.path} (${candidate.source}): version ${major}.${(version >>> 8) & 0xff}.${
          version & 0xff
        }, this binding needs ${LIB_MAJOR}.x`,
      );
      continue;
    }
    return lib;
  }
  const env = candidates.find((c) => c.source === "env");
  const hint = env
    ? `${LIB_ENV} (or --lib) names ${env.path}, so only it was tried`
    : candidates.some((c) => c.source === "local")
    ? `${BUILD_HINT}, or ${INSTALL_HINT}, or set ${LIB_ENV} to its path`
    : `${INSTALL_HINT}, or set ${LIB_ENV} to its path`;
  throw new BlksnapLibraryError(
    `libblksnap not found: ${hint}. Tried:\n  ${tried.join("\n  ")}`,
    tried,
  );
}

let loaded: BlksnapLibrary | undefined;

/** The library, opened on the first call and kept open. */
export function loadLibrary(): BlksnapLibrary {
  loaded ??= openLibrary(libraryCandidates());
  return loaded;
}

/** The library's symbols (see {@linkcode loadLibrary}). */
export function native(): BlksnapLibrary["symbols"] {
  return loadLibrary().symbols;
}

/**
 * Install blksnap on a server, or remove it again: the `blksnap` command
 * (`deno install`, with the absolute path of Deno and its own module cache,
 * so cron and systemd run it with their short PATH and without a HOME),
 * libblksnap in `PREFIX/lib` (then `ldconfig`), the kernel module through
 * DKMS (`kmod/dkms.conf`, rebuilt for every new kernel) and loaded at boot,
 * bash completion, and the systemd units and cron file (installed, not
 * enabled). Repositories are never touched.
 *
 * ```sh
 * deno task install                     # as root, from a clone: PREFIX /usr/local
 * deno task install --uninstall         # remove what was installed (config kept)
 * deno run -A dist/install.ts --help
 * ```
 *
 * Every step says what it did; a step that cannot run here (no compiler for
 * the library, no DKMS for the module) is reported with what to do, and the
 * others still run. Exit status: 0 done, 1 a step failed, 2 bad usage.
 *
 * @module
 */

import { parseArgs } from "node:util";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const USAGE =
  "usage: install.ts [--prefix DIR] [--etc DIR] [--no-lib] [--no-module] [--no-units] " +
  "[--copy-deno] [--dry-run] [--uninstall [--purge]]";
const HELP = `${USAGE}

Installs, as root:
  PREFIX/bin/blksnap              the command (deno install; runs with -A: Deno asks
                                  --allow-all for device files and /proc, /sys)
  PREFIX/lib/blksnap/             its Deno module cache ($DENO_DIR instead when set), and
                                  Deno itself with --copy-deno
  PREFIX/lib/libblksnap.so.1      the C library (built with make -C kmod lib), then ldconfig
  blksnap.ko                      through DKMS (dkms add ./kmod; dkms install), and
                                  ETC/modules-load.d/blksnap.conf to load it at boot
  PREFIX/share/bash-completion/completions/blksnap
  ETC/systemd/system/blksnap-{backup,verify}.{service,timer}   (not enabled)
  ETC/cron.d/blksnap.example      the cron alternative (rename it to use it)
  ETC/blksnap/blksnap.env         what the units back up (kept if present; mode 0600)

  --prefix DIR   where the command, library and completion go (default /usr/local)
  --etc DIR      where configuration goes (default /etc)
  --no-lib, --no-module, --no-units   skip that part
  --copy-deno    copy the Deno binary under PREFIX/lib/blksnap (default: when the running
                 one lives in a cache, e.g. npx's)
  --dry-run      say what would be done
  --uninstall    remove what install put there (ETC/blksnap/blksnap.env kept unless --purge)`;

/** One thing done (or, on a dry run, to do), skipped because it cannot be done here, or failed. */
interface Step {
  what: string;
  state: "done" | "skipped" | "failed";
  note?: string;
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    options: {
      help: { type: "boolean", short: "h" },
      prefix: { type: "string", default: "/usr/local" },
      etc: { type: "string", default: "/etc" },
      "no-lib": { type: "boolean" },
      "no-module": { type: "boolean" },
      "no-units": { type: "boolean" },
      "copy-deno": { type: "boolean" },
      "dry-run": { type: "boolean" },
      uninstall: { type: "boolean" },
      purge: { type: "boolean" },
    },
  });
} catch (e) {
  console.error(`${USAGE}\ninstall.ts: ${(e as Error).message}`);
  Deno.exit(2);
}
const opt = parsed.values;
if (opt.help) {
  console.log(HELP);
  Deno.exit(0);
}

const prefix = opt.prefix;
const etc = opt.etc;
const dry = opt["dry-run"] ?? false;
const bin = join(prefix, "bin");
const home = join(prefix, "lib", "blksnap"); // our own files: module cache, Deno copy, record
const record = join(home, "installed.json");
const here = new URL("..", import.meta.url); // the tree this script comes from (clone or URL)
const clone = here.protocol === "file:" ? fileURLToPath(here) : null;
const steps: Step[] = [];

function say(step: Step): void {
  steps.push(step);
  const mark = step.state === "done"
    ? (dry ? "would" : "ok")
    : step.state === "skipped"
    ? "SKIPPED"
    : "FAILED";
  console.log(`${mark.padEnd(8)} ${step.what}${step.note ? `\n         ${step.note}` : ""}`);
}

async function exists(path: string): Promise<boolean> {
  return (await Deno.lstat(path).catch(() => null)) !== null;
}

async function run(
  cmd: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await new Deno.Command(cmd, {
      args,
      env: { NO_COLOR: "1", ...env },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder();
    return { ok: r.success, out: (text.decode(r.stdout) + text.decode(r.stderr)).trim() };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

/** Files this install wrote, for the uninstall (paths; directories last). */
async function readRecord(): Promise<string[]> {
  try {
    return JSON.parse(await Deno.readTextFile(record)).files as string[];
  } catch {
    return [];
  }
}

async function writeFile(path: string, data: string, mode = 0o644): Promise<void> {
  if (dry) return;
  await Deno.mkdir(dirname(path), { recursive: true });
  await Deno.writeTextFile(path, data, { mode });
  await Deno.chmod(path, mode);
}

/** A shipped template with the install's paths filled in. */
async function template(name: string): Promise<string> {
  const text = await (await fetch(new URL(`dist/${name}`, here))).text();
  const docs = new URL("docs/operations.md", here).href;
  return text.replaceAll("@BINDIR@", bin).replaceAll("@ETCDIR@", etc).replaceAll("@DOCURL@", docs);
}

/** The Deno binary the command will run with: an absolute path that stays. */
async function denoFor(files: string[]): Promise<string> {
  const self = await Deno.realPath(Deno.execPath());
  const transient = /\/\.npm\/|\/\.cache\/|\/tmp\//.test(self);
  if (!opt["copy-deno"] && !transient) return self;
  const copy = join(home, "deno");
  if (!dry) {
    await Deno.mkdir(home, { recursive: true });
    await Deno.copyFile(self, copy);
    await Deno.chmod(copy, 0o755);
  }
  files.push(copy);
  return copy;
}

// ---------------------------------------------------------------- install

async function installCommand(files: string[]): Promise<void> {
  const deno = await denoFor(files);
  // $DENO_DIR, when set, is used (and kept on uninstall): a machine without
  // network (the test VM) installs from the cache it was given.
  const given = Deno.env.get("DENO_DIR");
  const cache = given || join(home, "cache");
  const main = new URL("cli/main.ts", here).href;
  if (!dry) {
    // deno install caches the module graph (npm packages included) into DENO_DIR;
    // without a network (an air-gapped server, the test VM) it installs from that
    // cache when everything is there.
    const args = ["install", "--global", "--force", "--allow-all", "--name", "blksnap"];
    let r = await run(Deno.execPath(), [...args, "--root", prefix, main], { DENO_DIR: cache });
    if (!r.ok && /error sending request|dns error|Connect/.test(r.out)) {
      r = await run(Deno.execPath(), [...args, "--cached-only", "--root", prefix, main], {
        DENO_DIR: cache,
      });
    }
    if (!r.ok) {
      say({
        what: `the blksnap command in ${bin}`,
        state: "failed",
        // The error and its cause, not Deno's backtrace that follows them.
        note: r.out.split("\n").filter((l) => /error|^\s+0: (?!<unknown>)/i.test(l)).join(" ")
          .replace(/\s+/g, " ").trim() || r.out.trim().split("\n").at(-1),
      });
      return;
    }
    // The generated script runs `deno` from PATH, which cron and systemd may not have.
    const wrapper = join(bin, "blksnap");
    const text = await Deno.readTextFile(wrapper);
    await Deno.writeTextFile(
      wrapper,
      text.replace(
        /^exec deno /m,
        `export DENO_DIR='${cache}'\nexec '${deno}' `,
      ),
    );
  }
  files.push(join(bin, "blksnap"), join(bin, ".blksnap"));
  if (!given) files.push(cache);
  say({
    what: `the blksnap command: ${join(bin, "blksnap")} (Deno ${deno}, cache ${cache})`,
    state: "done",
  });
}

async function installLibrary(files: string[]): Promise<void> {
  const what = `libblksnap.so.1 in ${join(prefix, "lib")}`;
  if (!clone) {
    say({
      what,
      state: "skipped",
      note: "run the install from a clone to build it (make -C kmod lib)",
    });
    return;
  }
  const built = join(clone, "kmod/ctl/build/libblksnap.so.1");
  if (!(await exists(built)) && !dry) {
    const r = await run("make", ["-s", "-C", join(clone, "kmod"), "lib"]);
    if (!r.ok) {
      say({ what, state: "failed", note: `make -C kmod lib failed: ${r.out.split("\n").at(-1)}` });
      return;
    }
  }
  const target = join(prefix, "lib", "libblksnap.so.1");
  if (!dry) {
    await Deno.mkdir(dirname(target), { recursive: true });
    await Deno.copyFile(built, target);
    await Deno.chmod(target, 0o755);
  }
  files.push(target);
  // ldconfig: the system cache when PREFIX/lib is a configured directory, else just the link.
  const configured = await run("ldconfig", ["-v", "-N", "-X"]);
  const inCache = configured.out.split("\n").some((l) => l.startsWith(`${join(prefix, "lib")}:`));
  if (!dry) await run("ldconfig", inCache ? [] : ["-n", join(prefix, "lib")]);
  say({
    what,
    state: "done",
    note: inCache
      ? "ldconfig: the system loader finds it"
      : `${join(prefix, "lib")} is not in the ` +
        "loader's path: set BLKSNAP_LIB or add it to /etc/ld.so.conf.d/",
  });
}

async function installModule(files: string[]): Promise<void> {
  const conf = clone ? join(clone, "kmod/dkms.conf") : null;
  if (!conf || !(await exists(conf))) {
    say({
      what: "the kernel module",
      state: "skipped",
      note: "not installed by this command (this tree has no kmod/dkms.conf): build and load " +
        "it with `make -C kmod module` and `insmod kmod/module/build-$(uname -r)/blksnap.ko` " +
        "(docs/operations.md, section 1)",
    });
    return;
  }
  const version = /PACKAGE_VERSION="([^"]+)"/.exec(await Deno.readTextFile(conf))?.[1];
  if (!(await run("dkms", ["--version"])).ok) {
    say({
      what: "the kernel module through DKMS",
      state: "skipped",
      note: "dkms is not installed: apt-get install dkms linux-headers-$(uname -r), then install " +
        "again",
    });
    return;
  }
  if (!dry) {
    const status = await run("dkms", ["status", `blksnap/${version}`]);
    if (!status.out.includes("blksnap")) {
      const add = await run("dkms", ["add", join(clone!, "kmod")]);
      if (!add.ok) {
        say({ what: "dkms add ./kmod", state: "failed", note: add.out.split("\n").at(-1) });
        return;
      }
    }
    const inst = await run("dkms", ["install", `blksnap/${version}`]);
    if (!inst.ok) {
      say({
        what: `dkms install blksnap/${version}`,
        state: "failed",
        note: inst.out.split("\n").at(-1),
      });
      return;
    }
  }
  const load = join(etc, "modules-load.d", "blksnap.conf");
  await writeFile(
    load,
    "# load the blksnap module at boot (installed by blksnap's install)\nblksnap\n",
  );
  files.push(load, `dkms:blksnap/${version}`);
  const loaded = dry ? { ok: true, out: "" } : await run("modprobe", ["blksnap"]);
  say({
    what: `the kernel module: DKMS blksnap/${version}, loaded at boot by ${load}`,
    state: "done",
    note: loaded.ok ? undefined : `modprobe blksnap: ${loaded.out}`,
  });
}

async function installExtras(files: string[]): Promise<void> {
  const completion = join(prefix, "share/bash-completion/completions/blksnap");
  if (!dry) {
    const r = await run(join(bin, "blksnap"), ["completion", "bash"]);
    if (r.ok) await writeFile(completion, r.out + "\n");
  }
  files.push(completion);
  say({ what: `bash completion: ${completion}`, state: "done" });
  if (opt["no-units"]) return;
  const units = join(etc, "systemd/system");
  for (
    const name of [
      "blksnap-backup.service",
      "blksnap-backup.timer",
      "blksnap-verify.service",
      "blksnap-verify.timer",
    ]
  ) {
    await writeFile(join(units, name), await template(`systemd/${name}`));
    files.push(join(units, name));
  }
  say({
    what: `systemd units in ${units} (enable: systemctl enable --now blksnap-backup.timer ` +
      "blksnap-verify.timer)",
    state: "done",
  });
  const cron = join(etc, "cron.d", "blksnap.example");
  await writeFile(cron, await template("cron.d/blksnap"));
  files.push(cron);
  say({
    what: `cron lines: ${cron} (rename to ${join(etc, "cron.d", "blksnap")} to use them)`,
    state: "done",
  });
  const env = join(etc, "blksnap", "blksnap.env");
  if (await exists(env)) {
    say({ what: `${env} kept as it is`, state: "done" });
  } else {
    await writeFile(env, await template("blksnap.env"), 0o600);
    say({ what: `${env}: edit the repository and devices`, state: "done" });
  }
}

// ---------------------------------------------------------------- uninstall

async function uninstall(): Promise<void> {
  const files = await readRecord();
  if (files.length === 0) {
    say({ what: `nothing recorded in ${record}: nothing to remove`, state: "done" });
    return;
  }
  if (!dry && (await exists("/run/systemd/system"))) {
    await run("systemctl", ["disable", "--now", "blksnap-backup.timer", "blksnap-verify.timer"]);
  }
  for (const f of files) {
    if (f.startsWith("dkms:")) {
      if (!dry) await run("dkms", ["remove", f.slice(5), "--all"]);
      say({ what: `dkms remove ${f.slice(5)}`, state: "done" });
      continue;
    }
    if (!(await exists(f))) continue;
    if (!dry) await Deno.remove(f, { recursive: true });
    say({ what: `removed ${f}`, state: "done" });
  }
  if (files.some((f) => f.endsWith("libblksnap.so.1")) && !dry) await run("ldconfig", []);
  const env = join(etc, "blksnap");
  if (opt.purge && (await exists(env))) {
    if (!dry) await Deno.remove(env, { recursive: true });
    say({ what: `removed ${env}`, state: "done" });
  }
  if (!dry) await Deno.remove(home, { recursive: true }).catch(() => {});
}

// ---------------------------------------------------------------- main

if (opt.uninstall) {
  await uninstall();
} else {
  const files = await readRecord();
  const add = (list: string[]) => {
    for (const f of list) if (!files.includes(f)) files.push(f);
  };
  const mine: string[] = [];
  await installCommand(mine);
  if (!opt["no-lib"]) await installLibrary(mine);
  if (!opt["no-module"]) await installModule(mine);
  await installExtras(mine);
  add(mine);
  if (!dry) {
    await Deno.mkdir(home, { recursive: true });
    await Deno.writeTextFile(record, JSON.stringify({ prefix, etc, files }, null, 2) + "\n");
  }
}
const notDone = steps.filter((s) => s.state !== "done");
if (notDone.length > 0 && !opt.uninstall) {
  console.log(`\n${notDone.length} step(s) not done (see above); the rest is installed.`);
}
Deno.exit(steps.some((s) => s.state === "failed") ? 1 : 0);

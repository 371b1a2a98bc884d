/**
 * The ways an operator installs, runs and schedules blksnap, tried for real
 * on this host (no kernel module needed):
 * - by URL: the tree served on 127.0.0.1 (`.ts` as application/typescript),
 *   the CLI and every example run from an empty directory with a fresh
 *   DENO_DIR (no import map, no config), and the installer by URL;
 * - installed from the clone (`deno task install` into a scratch PREFIX and
 *   ETC): the command runs under cron's environment (`env -i`, short PATH, no
 *   HOME), libblksnap, completion, units and cron file are in place,
 *   `systemd-analyze verify` accepts the units, and uninstall removes it all;
 * - scheduled: the shipped units' ExecStart lines and the cron lines run as
 *   systemd and cron would run them; a failed run exits non-zero with one
 *   `blksnap: error:` line.
 * Device backups (which need the module) are in VM suite 49.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { execArgv, parseEnvironmentFile, unitValues } from "../_systemd.ts";
import { REPO_ROOT, run } from "./_host.ts";

const DENO = Deno.execPath();
const CRON_ENV = { PATH: "/usr/bin:/bin", SHELL: "/bin/sh", LOGNAME: "root" };

/** The tree over HTTP on 127.0.0.1, TypeScript served as such. */
function serveTree(): { url: string; close: () => Promise<void> } {
  const types: Record<string, string> = {
    ".ts": "application/typescript",
    ".json": "application/json",
    ".md": "text/markdown",
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    if (path.includes("..")) return new Response("no", { status: 403 });
    try {
      const body = await Deno.readFile(join(REPO_ROOT, path));
      const ext = path.slice(path.lastIndexOf("."));
      return new Response(body, {
        headers: { "content-type": types[ext] ?? "application/octet-stream" },
      });
    } catch {
      return new Response("not found", { status: 404 });
    }
  });
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

/** Install into a scratch PREFIX and ETC (`deno task install` with `extra` options). */
async function installTo(
  dir: string,
  ...extra: string[]
): Promise<{ prefix: string; etc: string }> {
  const prefix = join(dir, "usr");
  const etc = join(dir, "etc");
  const inst = await run(DENO, [
    "task",
    "--quiet",
    "install",
    "--prefix",
    prefix,
    "--etc",
    etc,
    "--no-module",
    ...extra,
  ]);
  assert.equal(inst.code, 0, inst.stdout + inst.stderr);
  if (!extra.includes("--no-lib")) assert.match(inst.stdout, /^ok +libblksnap\.so\.1/m);
  assert.match(inst.stdout, /^ok +the blksnap command/m);
  return { prefix, etc };
}

async function scratch(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "blksnap-operator-" });
}

Deno.test("by URL from an empty directory: the CLI, every example and the installer", async () => {
  const dir = await scratch();
  const web = serveTree();
  try {
    const empty = join(dir, "empty");
    await Deno.mkdir(empty);
    const env = { DENO_DIR: join(dir, "deno-dir"), HOME: dir };
    const byUrl = (path: string, ...args: string[]) =>
      run(DENO, ["run", "-A", `${web.url}/${path}`, ...args], { cwd: empty, env });
    const help = await byUrl("cli/main.ts", "--help");
    assert.equal(help.code, 0, help.stderr);
    assert.match(help.stdout, /^Usage: blksnap/);
    // A whole round trip through the repository commands.
    const image = join(dir, "disk.img");
    const data = new Uint8Array(3 << 20);
    crypto.getRandomValues(data.subarray(0, 65536));
    await Deno.writeFile(image, data);
    const repo = join(dir, "repo");
    for (
      const argv of [
        ["init", "-r", repo, "-c", "1M", "--no-encryption"],
        ["backup", "-r", repo, "--image", image],
        ["verify", "-r", repo, "--deep"],
        ["restore", "-r", repo, "latest", join(dir, "out.img")],
      ]
    ) {
      const r = await byUrl("cli/main.ts", ...argv);
      assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
    }
    assert.deepEqual(await Deno.readFile(join(dir, "out.img")), data);
    for await (const e of Deno.readDir(join(REPO_ROOT, "examples"))) {
      const r = await byUrl(`examples/${e.name}`, "--help");
      assert.equal(r.code, 0, `${e.name}: ${r.stderr}`);
      assert.match(r.stdout, /^usage: /, e.name);
    }
    // The library by URL, with the permissions the README gives: --allow-import is
    // needed for a host off Deno's default list.
    const use = join(empty, "use.ts");
    await Deno.writeTextFile(
      use,
      `import { CbtMap, parseSize } from "${web.url}/mod.ts";\n` +
        `import { Repository } from "${web.url}/lib/backup/mod.ts";\n` +
        `console.log(typeof CbtMap, parseSize("4G"), typeof Repository.open);\n`,
    );
    const perms = ["--allow-ffi", "--allow-read", "--allow-env"];
    const denied = await run(DENO, ["run", ...perms, use], { cwd: empty, env });
    assert.notEqual(denied.code, 0);
    assert.match(denied.stderr, /--allow-import/);
    const lib = await run(DENO, ["run", ...perms, "--allow-import", use], { cwd: empty, env });
    assert.equal(lib.code, 0, lib.stderr);
    assert.equal(lib.stdout.trim(), "function 4294967296n function");
    // The installer by URL installs the command (not the library: no clone to build it).
    const prefix = join(dir, "usr");
    const inst = await byUrl(
      "dist/install.ts",
      "--prefix",
      prefix,
      "--etc",
      join(dir, "etc"),
      "--no-module",
      "--no-units",
    );
    assert.equal(inst.code, 0, inst.stdout + inst.stderr);
    assert.match(inst.stdout, /SKIPPED +libblksnap/);
    const installed = await run(join(prefix, "bin/blksnap"), ["list", "-r", repo], {
      cwd: empty,
      env: CRON_ENV,
    });
    assert.equal(installed.code, 0, installed.stderr);
    assert.match(installed.stdout, /full/);
  } finally {
    await web.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task install: runs under cron's environment, units verify, uninstall removes it", async () => {
  const dir = await scratch();
  try {
    const { prefix, etc } = await installTo(dir);
    const bin = join(prefix, "bin/blksnap");
    const v = await run(bin, ["--version"], { cwd: dir, env: CRON_ENV });
    assert.deepEqual([v.code, v.stdout.trim()], [0, "0.1.0"], v.stderr);
    // The installed library loads (no module here: the kernel call says what is missing).
    const ver = await run(bin, ["version"], {
      cwd: dir,
      env: { ...CRON_ENV, BLKSNAP_LIB: join(prefix, "lib/libblksnap.so.1") },
    });
    assert.equal(ver.code, 1);
    assert.doesNotMatch(ver.stderr, /libblksnap not found/);
    assert.match(ver.stderr, /\/dev\/blksnap-control is missing/);
    assert.match(
      await Deno.readTextFile(join(prefix, "share/bash-completion/completions/blksnap")),
      /complete -o default -F _blksnap blksnap/,
    );
    const env = join(etc, "blksnap/blksnap.env");
    assert.equal((await Deno.stat(env)).mode! & 0o777, 0o600);
    const units = ["backup.service", "backup.timer", "verify.service", "verify.timer"]
      .map((u) => join(etc, "systemd/system", `blksnap-${u}`));
    const analyze = await run("systemd-analyze", ["verify", ...units]);
    assert.equal(analyze.code, 0, analyze.stdout + analyze.stderr);
    for (const u of units.filter((u) => u.endsWith(".service"))) {
      for (const line of unitValues(await Deno.readTextFile(u), "Service", "ExecStart")) {
        assert.ok(line.startsWith(`${bin} --quiet `), line);
      }
    }
    const cron = await Deno.readTextFile(join(etc, "cron.d/blksnap.example"));
    for (const line of cron.split("\n").filter((l) => /^\d/.test(l))) {
      const command = line.split(/\s+/).slice(6).join(" ");
      for (const part of command.split("&&")) assert.ok(part.trim().startsWith(`${bin} `), part);
    }
    const un = await run(DENO, [
      "run",
      "-A",
      "dist/install.ts",
      "--prefix",
      prefix,
      "--etc",
      etc,
      "--uninstall",
    ]);
    assert.equal(un.code, 0, un.stdout + un.stderr);
    for (
      const gone of [
        bin,
        join(prefix, "lib/libblksnap.so.1"),
        join(prefix, "lib/blksnap"),
        ...units,
      ]
    ) {
      assert.equal(await Deno.lstat(gone).catch(() => null), null, gone);
    }
    assert.ok(await Deno.stat(env), "the configuration is kept");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the shipped schedules run as systemd and cron run them; a failure is one journal line", async () => {
  const dir = await scratch();
  try {
    const { prefix, etc } = await installTo(dir, "--no-lib");
    const bin = join(prefix, "bin/blksnap");
    const repo = join(dir, "repo");
    const image = join(dir, "disk.img");
    await Deno.writeFile(image, new Uint8Array(1 << 20).fill(7));
    for (
      const argv of [["init", "-r", repo, "--no-encryption"], [
        "backup",
        "-r",
        repo,
        "--image",
        image,
      ]]
    ) {
      assert.equal((await run(bin, argv, { env: CRON_ENV })).code, 0);
    }
    // The env file, pointed at this repository.
    const envFile = join(etc, "blksnap/blksnap.env");
    const envText = (await Deno.readTextFile(envFile)).replace(
      /^BLKSNAP_REPO=.*$/m,
      `BLKSNAP_REPO=${repo}`,
    );
    await Deno.writeTextFile(envFile, envText);
    const env = parseEnvironmentFile(envText);
    assert.equal(env.BLKSNAP_REPO, repo);
    const unit = (name: string) => Deno.readTextFile(join(etc, "systemd/system", name));
    // blksnap-verify.service, and the prune and gc steps of blksnap-backup.service.
    const steps = [
      ...unitValues(await unit("blksnap-verify.service"), "Service", "ExecStart"),
      ...unitValues(await unit("blksnap-backup.service"), "Service", "ExecStart").slice(1),
    ];
    assert.equal(steps.length, 3);
    for (const line of steps) {
      const [cmd, ...args] = execArgv(line, env);
      const r = await run(cmd, args, { env: { ...CRON_ENV, ...env } });
      assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""], line);
    }
    // The cron verify line, as cron runs it (/bin/sh -c, cron's PATH).
    const cron = await Deno.readTextFile(join(etc, "cron.d/blksnap.example"));
    const verifyLine = cron.split("\n").find((l) => l.startsWith("0 6 "))!;
    const command = verifyLine.split(/\s+/).slice(6).join(" ").replaceAll("/backup/repo", repo);
    const r = await run("/bin/sh", ["-c", command], { env: CRON_ENV });
    assert.deepEqual([r.code, r.stdout, r.stderr], [0, "", ""], command);
    // A failure: another host holds the lock. Exit 4 and one line for the journal.
    await Deno.writeTextFile(
      join(repo, "lock"),
      JSON.stringify({
        pid: 1,
        host: "elsewhere",
        time: new Date().toISOString(),
        operation: "backup",
        token: "t",
      }),
    );
    const [cmd, ...args] = execArgv(steps[2], env);
    const failed = await run(cmd, args, { env: { ...CRON_ENV, ...env } });
    assert.equal(failed.code, 4);
    assert.equal(failed.stdout, "");
    assert.match(
      failed.stderr,
      /^blksnap: error: LOCKED: Repository .* is locked: backup by pid 1 on elsewhere/,
    );
    assert.equal(failed.stderr.trim().split("\n").length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "an air-gapped install (no network namespace) installs from the module cache it is given",
  ignore: (await run("unshare", ["-n", "true"])).code !== 0,
  fn: async () => {
    const dir = await scratch();
    try {
      // The cache an operator carries to the server, made as operations.md says:
      // `deno cache --no-lock` keeps the npm registry metadata that `deno install`
      // reads (a cache made through the lockfile lacks it and cannot install offline).
      const denoDir = join(dir, "cache");
      const cached = await run(DENO, ["cache", "--quiet", "--no-lock", "cli/main.ts"], {
        env: { DENO_DIR: denoDir },
      });
      assert.equal(cached.code, 0, cached.stderr);
      const prefix = join(dir, "usr");
      const inst = await run("unshare", [
        "-n",
        DENO,
        "run",
        "-A",
        "dist/install.ts",
        "--prefix",
        prefix,
        "--etc",
        join(dir, "etc"),
        "--no-module",
        "--no-lib",
      ], { env: { DENO_DIR: denoDir } });
      assert.equal(inst.code, 0, inst.stdout + inst.stderr);
      const v = await run("unshare", ["-n", join(prefix, "bin/blksnap"), "--version"], {
        env: CRON_ENV,
        clearEnv: true,
      });
      assert.deepEqual([v.code, v.stdout.trim()], [0, "0.1.0"], v.stderr);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

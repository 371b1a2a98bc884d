/**
 * Helpers of the host tests (real programs on this machine, no kernel
 * module): Debian packages installed on demand the way tests/vm/vm.sh does
 * (as root; otherwise the test fails naming the `apt-get` line), the
 * `blksnap` CLI run as the docs tell an operator, and a `blksnap serve`
 * process in the background.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { fileURLToPath } from "node:url";
import { join } from "node:path";

/** The checkout's root directory. */
export const REPO_ROOT: string = fileURLToPath(new URL("../..", import.meta.url));
const CLI = join(REPO_ROOT, "cli/main.ts");

/** Output of a finished program. */
export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run `cmd` with `args` to its end. */
export async function run(
  cmd: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string; clearEnv?: boolean } = {},
): Promise<Ran> {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: options.cwd ?? REPO_ROOT,
    env: { NO_COLOR: "1", ...options.env },
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** Run `cmd`; throw with its output unless it exits 0. */
export async function runOk(cmd: string, args: string[]): Promise<Ran> {
  const r = await run(cmd, args);
  if (r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}:\n${r.stdout}\n${r.stderr}`);
  }
  return r;
}

/** Run the blksnap CLI (`deno run -A cli/main.ts ...`), with `env` added. */
export function blksnap(args: string[], env: Record<string, string> = {}): Promise<Ran> {
  return run(Deno.execPath(), ["run", "-A", CLI, ...args], { env });
}

async function have(command: string): Promise<boolean> {
  return (await run("sh", ["-c", `command -v ${command}`])).code === 0;
}

/**
 * Make sure `commands` exist, installing their Debian `packages` when
 * missing (as root); throws naming the install command otherwise.
 */
export async function ensureTools(commands: string[], packages: string[]): Promise<void> {
  const missing = [];
  for (const c of commands) if (!(await have(c))) missing.push(c);
  if (missing.length === 0) return;
  if (Deno.uid() !== 0) {
    throw new Error(
      `missing ${missing.join(", ")}: run as root, or install them first: ` +
        `sudo apt-get install -y ${packages.join(" ")}`,
    );
  }
  const apt = (args: string[]) =>
    run("apt-get", args, { env: { DEBIAN_FRONTEND: "noninteractive" } });
  const install = ["install", "-y", "-qq", "--no-install-recommends", ...packages];
  let r = await apt(install);
  if (r.code !== 0) {
    await apt(["update", "-qq"]);
    r = await apt(install);
  }
  if (r.code !== 0) throw new Error(`apt-get ${install.join(" ")} failed:\n${r.stderr}`);
}

/** Hex SHA-256 of a file. */
export async function fileSha256(path: string): Promise<string> {
  return createHash("sha256").update(await Deno.readFile(path)).digest("hex");
}

/** A `blksnap serve` running in the background. */
export class ServeProcess {
  readonly child: Deno.ChildProcess;
  readonly args: string[];
  #stderr = "";
  #done: Promise<Deno.CommandStatus>;
  #reader: Promise<void>;

  private constructor(child: Deno.ChildProcess, args: string[]) {
    this.child = child;
    this.args = args;
    this.#reader = (async () => {
      const d = new TextDecoder();
      for await (const c of child.stderr) this.#stderr += d.decode(c, { stream: true });
    })();
    this.#done = child.status;
  }

  /** Everything the server printed on stderr so far (its log). */
  get log(): string {
    return this.#stderr;
  }

  /**
   * Start `blksnap serve args...` and wait until `socket` (or the TCP `port`)
   * accepts connections.
   */
  static async start(
    args: string[],
    ready: { socket: string } | { port: number },
    env: Record<string, string> = {},
  ): Promise<ServeProcess> {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CLI, "serve", ...args],
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1", ...env },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const p = new ServeProcess(child, args);
    const deadline = Date.now() + 30_000;
    let exited = false;
    p.#done.then(() => (exited = true));
    for (;;) {
      try {
        const c = "socket" in ready
          ? await Deno.connect({ transport: "unix", path: ready.socket })
          : await Deno.connect({ hostname: "127.0.0.1", port: ready.port });
        c.close();
        return p;
      } catch {
        if (exited || Date.now() > deadline) {
          const st = await p.stop();
          throw new Error(`blksnap serve did not come up (exit ${st.code}):\n${p.log}`);
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  /** Send `signal` and wait for the exit; the exit status, stdout, and the time it took. */
  async stop(
    signal: Deno.Signal = "SIGTERM",
  ): Promise<{ code: number; stdout: string; ms: number }> {
    const t0 = performance.now();
    try {
      this.child.kill(signal);
    } catch {
      // already gone
    }
    return await this.wait(t0);
  }

  /** Wait for the exit (after a signal sent elsewhere). */
  async wait(t0 = performance.now()): Promise<{ code: number; stdout: string; ms: number }> {
    const out = new Response(this.child.stdout).text();
    const st = await this.#done;
    await this.#reader;
    return { code: st.code, stdout: await out, ms: performance.now() - t0 };
  }
}

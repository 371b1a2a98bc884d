/**
 * Signalling a child process mid-run for the interruption tests: wait until
 * its work has visibly started, pause it (SIGSTOP), send the signal, resume
 * it (SIGCONT), so the signal always lands while the work is in progress.
 *
 * @module
 */

/** How a signalled child ended. */
export interface Stopped {
  /** Its exit code. */
  code: number;
  /** Everything it wrote on stderr. */
  stderr: string;
  /** Milliseconds from the signal to its exit. */
  stopMs: number;
}

/** Wait until `started()` (at most `timeoutMs`), then signal `child` mid-run; its outcome. */
export async function signalMidRun(
  child: Deno.ChildProcess,
  started: () => Promise<boolean>,
  signal: "SIGINT" | "SIGTERM",
  timeoutMs = 60_000,
): Promise<Stopped> {
  const deadline = Date.now() + timeoutMs;
  while (!(await started())) {
    if (Date.now() > deadline) throw new Error("the run never started");
    await new Promise((r) => setTimeout(r, 2));
  }
  child.kill("SIGSTOP");
  child.kill(signal);
  const t0 = performance.now();
  child.kill("SIGCONT");
  // Read stdout to its end (a cancelled pipe would fail the child's last write).
  const [status, , stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).arrayBuffer(),
    new Response(child.stderr).text(),
  ]);
  return { code: status.code, stderr, stopMs: performance.now() - t0 };
}

/**
 * Progress bars for long work (backup, restore, verify, repair): drawn with
 * `cli-progress` on stderr only when stderr is a terminal and neither
 * `--json` nor `--quiet` is given; otherwise a no-op, so logs from cron and
 * systemd stay clean. A bar hides the cursor while drawn; it is removed, and
 * the cursor shown again, when the work ends or the run is interrupted.
 *
 * @module
 */

import { cliProgress } from "../deps.ts";
import type { CliContext } from "./_output.ts";
import { formatBytes } from "./_size.ts";

/** What the flows report: done and total, in bytes (or items). */
export interface ProgressUpdate {
  /** Done so far. */
  bytesDone: number;
  /** Total. */
  bytesTotal: number;
}

/** A progress display; `update` is passed as a flow's `onProgress`. */
export interface ProgressDisplay {
  /** Show `p`. */
  update(p: ProgressUpdate): void;
  /** Remove the bar. Idempotent. */
  stop(): void;
  /** True when a bar is drawn. */
  readonly active: boolean;
}

/** A display that shows nothing. */
export const quietProgress: ProgressDisplay = {
  update(): void {},
  stop(): void {},
  active: false,
};

/**
 * A progress bar labelled `label`, in bytes (`unit: "bytes"`: rate and ETA)
 * or items; {@linkcode quietProgress} unless stdout is a terminal.
 */
export function progressBar(
  ctx: CliContext,
  label: string,
  unit: "bytes" | "items" = "bytes",
): ProgressDisplay {
  const terminal = ctx.io.stderrIsTerminal ?? ctx.io.isTerminal;
  if (!terminal || ctx.json || ctx.verbosity === 0) return quietProgress;
  const started = Date.now();
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}% | {done} of {all} | {rate} | ETA {eta_formatted}`,
    hideCursor: true,
    clearOnComplete: true,
    stopOnComplete: false,
    etaBuffer: 50,
    fps: 5,
  }, cliProgress.Presets.shades_classic);
  let running = false;
  const fmt = (n: number) => (unit === "bytes" ? formatBytes(n) : String(n));
  const display: ProgressDisplay = {
    active: true,
    update(p: ProgressUpdate): void {
      const secs = Math.max(0.001, (Date.now() - started) / 1000);
      const payload = {
        done: fmt(p.bytesDone),
        all: fmt(p.bytesTotal),
        rate: unit === "bytes"
          ? `${formatBytes(p.bytesDone / secs)}/s`
          : `${(p.bytesDone / secs).toFixed(0)}/s`,
      };
      if (!running) {
        bar.start(Math.max(1, p.bytesTotal), p.bytesDone, payload);
        running = true;
      } else {
        bar.setTotal(Math.max(1, p.bytesTotal));
        bar.update(p.bytesDone, payload);
      }
    },
    stop(): void {
      ctx.onInterrupt.delete(display.stop);
      if (running) bar.stop();
      running = false;
    },
  };
  ctx.onInterrupt.add(display.stop);
  return display;
}

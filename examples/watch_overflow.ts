/**
 * Watch a snapshot's events while reading its image, and abort cleanly when
 * the difference storage overflows.
 *
 * The snapshot's copy-on-write data goes to a difference storage capped at
 * `--limit`. If the original device changes more than that while the image
 * is read, the kernel marks the snapshot corrupted (the image then reads
 * with EIO) and queues an event. This script reads the image (hashing it,
 * standing in for any slow consumer; `--rate` throttles it in MiB/s), stops
 * at the first `corrupted` event, destroys the snapshot and exits 1 with the
 * reason: never a half-read image passed on as good.
 *
 * ```sh
 * deno run -A examples/watch_overflow.ts --diff-storage /var/tmp --limit 64M /dev/vdb
 * ```
 *
 * Exit status: 0 image read whole, 1 aborted (overflow or error), 2 bad usage.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { Session } from "../mod.ts";

const { values: opt, positionals } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    "diff-storage": { type: "string" },
    "limit": { type: "string", default: String(256 << 20) },
    "rate": { type: "string" }, // MiB/s
  },
});
const [device] = positionals;
if (!opt["diff-storage"] || !device || positionals.length !== 1) {
  console.error(
    "usage: watch_overflow.ts --diff-storage PATH [--limit BYTES] [--rate MIB/S] DEVICE",
  );
  Deno.exit(2);
}

const abort = new AbortController();
await using session = await Session.start({
  devices: [device],
  diffStorage: opt["diff-storage"],
  limit: BigInt(opt.limit),
  pollMs: 100,
  onEvent: (event) => {
    if (event.type === "noSpace") {
      console.error(
        `event: the difference storage cannot grow (${event.requestedSectors} sectors)`,
      );
    } else if (event.type === "corrupted") {
      console.error(
        `event: snapshot of ${event.device.major}:${event.device.minor} corrupted ` +
          `(${event.error})`,
      );
      abort.abort();
    }
  },
});
console.log(`snapshot ${session.snapshot.id} taken; reading ${session.imagePath(device)}`);

const hash = createHash("sha256");
const block = new Uint8Array(1 << 20);
const delayMs = opt.rate ? 1000 / Number(opt.rate) : 0;
let read = 0;
try {
  using image = await Deno.open(session.imagePath(device));
  for (;;) {
    if (abort.signal.aborted) break;
    const n = await image.read(block);
    if (n === null) break;
    hash.update(block.subarray(0, n));
    read += n;
    if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  }
} catch (e) {
  // A corrupted image reads with EIO; the event says why.
  if (!session.corrupted) throw e;
}

if (abort.signal.aborted || session.corrupted) {
  console.error(
    `aborted after ${read} bytes: the snapshot overflowed its ${opt.limit}-byte ` +
      "difference storage; raise --limit or back up at a quieter time",
  );
  Deno.exitCode = 1; // the session is closed (snapshot destroyed) on the way out
} else {
  console.log(`read ${read} bytes, sha256 ${hash.digest("hex")}; no overflow`);
}

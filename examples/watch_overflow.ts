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
 * `--limit` takes sizes such as `64M`; `--help` prints the usage.
 * Exit status: 0 image read whole, 1 aborted (overflow or error), 2 bad usage.
 *
 * @module
 */

import { createHash } from "node:crypto";
import { parseArgs } from "node:util";
import { parseSize, Session } from "../mod.ts";

const USAGE = "usage: watch_overflow.ts --diff-storage PATH [--limit SIZE] [--rate MIB/S] DEVICE";

function usage(problem: string): never {
  console.error(`${USAGE}\nwatch_overflow.ts: ${problem}`);
  Deno.exit(2);
}

let parsed;
try {
  parsed = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      "help": { type: "boolean", short: "h" },
      "diff-storage": { type: "string" },
      "limit": { type: "string", default: "256M" },
      "rate": { type: "string" }, // MiB/s
    },
  });
} catch (e) {
  usage((e as Error).message);
}
const { values: opt, positionals } = parsed;
if (opt.help) {
  console.log(
    `${USAGE}\n\nRead DEVICE's snapshot image while watching its events; stop ` +
      "cleanly when the difference storage (at most --limit, e.g. 64M) overflows.",
  );
  Deno.exit(0);
}
const [device] = positionals;
if (!opt["diff-storage"] || !device || positionals.length !== 1) {
  console.error(USAGE);
  Deno.exit(2);
}
let limit: bigint;
try {
  limit = parseSize(opt.limit);
} catch (e) {
  usage(`--limit: ${(e as Error).message}`);
}
if (opt.rate !== undefined && !(Number(opt.rate) > 0)) usage(`--rate: "${opt.rate}" is not a rate`);

const abort = new AbortController();
await using session = await Session.start({
  devices: [device],
  diffStorage: opt["diff-storage"],
  limit,
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
    `aborted after ${read} bytes: the snapshot overflowed its ${limit}-byte ` +
      "difference storage; raise --limit or back up at a quieter time",
  );
  Deno.exitCode = 1; // the session is closed (snapshot destroyed) on the way out
} else {
  console.log(`read ${read} bytes, sha256 ${hash.digest("hex")}; no overflow`);
}

/**
 * Mark a file's blocks dirty so the next incremental backup reads them again.
 *
 * Useful after something changed a file's blocks behind the tracker's back
 * (e.g. written while the tracker was detached), or to force a file into the
 * next backup. The file's extents on its block device come from FIEMAP; the
 * device holding the file must have an attached tracker.
 *
 * ```sh
 * deno run -A examples/mark_file_dirty.ts /srv/db/data.bin
 * ```
 *
 * `--help` prints the usage.
 * Exit status: 0 marked, 1 failed, 2 bad usage.
 *
 * @module
 */

import { fileSectors, Tracker } from "../mod.ts";

const USAGE = "usage: mark_file_dirty.ts FILE";
if (Deno.args.length === 1 && ["--help", "-h"].includes(Deno.args[0])) {
  console.log(
    `${USAGE}\n\nMark FILE's blocks (found by FIEMAP) changed on the tracked device ` +
      "holding it, so the next incremental backup reads them again.",
  );
  Deno.exit(0);
}
if (Deno.args.length !== 1 || Deno.args[0].startsWith("-")) {
  console.error(USAGE);
  Deno.exit(2);
}
const [path] = Deno.args;

// Where the file lies: its device and 512-byte sector ranges on it.
const { device, ranges, bytes } = await fileSectors(path);

// Mark them in both CBT maps: the next snapshot's map shows them changed.
using tracker = Tracker.open(device);
tracker.markDirty(ranges);
console.log(`${path}: ${bytes} bytes in ${ranges.length} extent(s) marked dirty on ${device}`);

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
 * Exit status: 0 marked, 1 failed, 2 bad usage.
 *
 * @module
 */

import { Tracker } from "../mod.ts";
import { fileSectors } from "../mod.ts";

if (Deno.args.length !== 1) {
  console.error("usage: mark_file_dirty.ts FILE");
  Deno.exit(2);
}
const [path] = Deno.args;

// Where the file lies: its device and 512-byte sector ranges on it.
const { device, ranges, bytes } = await fileSectors(path);

// Mark them in both CBT maps: the next snapshot's map shows them changed.
using tracker = Tracker.open(device);
tracker.markDirty(ranges);
console.log(`${path}: ${bytes} bytes in ${ranges.length} extent(s) marked dirty on ${device}`);

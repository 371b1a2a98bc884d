/**
 * The device images the backup benchmarks read:
 *
 * - **synthetic**: a 4 MiB period of 1 MiB zeros, 2 MiB of one log line
 *   repeated, 1 MiB random. No chunk is all zeros or a duplicate; the text
 *   compresses far better than real data. Kept because the first figures
 *   were measured on it.
 * - **real**: an ext4 file system (`mkfs.ext4 -d`) holding files from this
 *   system (`/usr/share`, `/usr/lib/x86_64-linux-gnu`, `/usr/bin`, in name
 *   order) up to 45 % of the image, a second copy of the first tenth of them
 *   (duplicates), and free space that reads as zeros: what a backup of a
 *   half-full root file system meets.
 *
 * @module
 */

import { fillRandom, MiB, sh } from "./_lib.ts";

/** A built image and how to describe it in a row's conditions. */
export interface Image {
  /** Its path. */
  path: string;
  /** Its size in bytes. */
  size: number;
  /** "synthetic" or "real". */
  kind: "synthetic" | "real";
  /** A few words for the conditions column. */
  describe: string;
}

/** Writes the synthetic image of `size` bytes (a multiple of 1 MiB) to `path`. */
export async function syntheticImage(path: string, size: number): Promise<Image> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  const text = new TextEncoder().encode(
    "Nov 24 03:11:35 host kernel: blk_update_request: I/O of sector 123456 took 12 ms\n",
  );
  const piece = new Uint8Array(MiB);
  for (let at = 0, i = 0; at < size; at += MiB, i++) {
    const kind = i % 4; // zeros, text, text, random
    if (kind === 0) piece.fill(0);
    else if (kind === 3) fillRandom(piece, i + 1);
    else {
      for (let p = 0; p < MiB; p++) {
        piece[p] = text[(p + i * 7) % text.length] ^ (p % 4096 === 0 ? i & 0xff : 0);
      }
    }
    let done = 0;
    while (done < piece.length) done += await f.write(piece.subarray(done));
  }
  f.close();
  return {
    path,
    size,
    kind: "synthetic",
    describe: `${
      size / MiB
    } MiB synthetic image (per 4 MiB: 1 MiB zeros, 2 MiB text, 1 MiB random)`,
  };
}

/**
 * Builds the real image of `size` bytes at `path` (needs `mkfs.ext4` with
 * `-d`, `find`, `tar`), staging the files under `work`.
 */
export async function realImage(path: string, size: number, work: string): Promise<Image> {
  const staging = `${work}/staging`;
  await Deno.mkdir(`${staging}/dup`, { recursive: true });
  const budget = Math.floor(size * 0.45);
  const listing = await sh(
    "find /usr/share /usr/lib/x86_64-linux-gnu /usr/bin -xdev -type f -size +0 -readable " +
      "-printf '%s %p\\n' 2>/dev/null | LC_ALL=C sort -k2",
  );
  const files: string[] = [];
  let used = 0;
  for (const line of listing.split("\n")) {
    const sp = line.indexOf(" ");
    if (sp < 0) continue;
    const bytes = Number(line.slice(0, sp));
    // Each file takes whole 4 KiB blocks; stop at the budget.
    const blocks = Math.ceil(bytes / 4096) * 4096;
    if (used + blocks > budget) break;
    files.push(line.slice(sp + 1).slice(1)); // relative to /
    used += blocks;
  }
  const dupCount = Math.floor(files.length / 10);
  await Deno.writeTextFile(`${work}/all.list`, files.join("\n") + "\n");
  await Deno.writeTextFile(`${work}/dup.list`, files.slice(0, dupCount).join("\n") + "\n");
  await sh(`tar -C / -cf - --files-from='${work}/all.list' | tar -C '${staging}' -xf -`);
  await sh(`tar -C / -cf - --files-from='${work}/dup.list' | tar -C '${staging}/dup' -xf -`);
  await sh(
    `mkfs.ext4 -q -F -b 4096 -L bench -E root_owner=0:0 -d '${staging}' '${path}' ${size / 1024}k`,
  );
  await Deno.remove(staging, { recursive: true });
  return {
    path,
    size,
    kind: "real",
    describe: `${size / MiB} MiB ext4 image: ${files.length} system files (${
      Math.round(used / MiB)
    } MiB), ${dupCount} of them twice, the rest free (zeros)`,
  };
}

/**
 * The demonstration the README's first command runs inside the test VM.
 *
 * Foundation stage: it reports the kernel and the loaded module's version.
 * The full demo (full and incremental backup of a live filesystem, restore,
 * verify) replaces it as the backup flows land.
 *
 * @module
 */

const kernel = (await Deno.readTextFile("/proc/sys/kernel/osrelease")).trim();
const out = await new Deno.Command("ctl_version", { stdout: "piped" }).output();
if (!out.success) {
  console.error("demo: the blksnap module did not answer its version request");
  Deno.exit(1);
}
const version = new TextDecoder().decode(out.stdout).trim();
console.log(`demo: kernel ${kernel}, blksnap module ${version} loaded and answering`);

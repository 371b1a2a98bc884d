/**
 * Counting TAP results, for the test runner (tests/run.ts).
 *
 * @module
 */

/**
 * Counts the top-level TAP results of one tier's output: `ok`/`not ok` lines
 * at the start of a line (indented sub-steps are not counted), with `# SKIP`
 * (or Deno's `# ignored`) counted as skipped. Lines may end in CR LF, as the
 * VM's serial port writes them.
 *
 * @example
 * ```ts
 * import { countTap } from "./_tap.ts";
 * const c = countTap("ok 1 - a\r\nnot ok 2 - b\n    ok 1 - step\nok 3 - c # SKIP no root\n");
 * console.assert(c.passed === 1 && c.failed === 1 && c.skipped === 1);
 * ```
 */
export function countTap(
  text: string,
): { passed: number; failed: number; skipped: number; failures: string[] } {
  const out = { passed: 0, failed: 0, skipped: 0, failures: [] as string[] };
  for (const line of text.split(/\r?\n/)) {
    const m = /^(not ok|ok)\b(?: \d+)?(?: -)? ?(.*?)\r?$/.exec(line);
    if (!m) continue;
    const desc = m[2];
    if (/#\s*(SKIP|skip|ignored)/.test(desc)) out.skipped++;
    else if (m[1] === "ok") out.passed++;
    else {
      out.failed++;
      out.failures.push(desc);
    }
  }
  return out;
}

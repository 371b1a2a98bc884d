/**
 * Running a shipped systemd unit's commands the way systemd would, for hosts
 * and VMs without a running systemd: `EnvironmentFile=` read as systemd reads
 * it, and each `ExecStart=` line split and expanded (`$VAR` splits into
 * words, `${VAR}` stays one). Tests only.
 *
 * @module
 */

/** `KEY=value` lines of an environment file (comments and blank lines skipped). */
export function parseEnvironmentFile(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#") || line.startsWith(";")) continue;
    const eq = line.indexOf("=");
    if (eq <= 0) continue;
    let value = line.slice(eq + 1).trim();
    if (/^(["']).*\1$/.test(value)) value = value.slice(1, -1);
    env[line.slice(0, eq).trim()] = value;
  }
  return env;
}

/** The values of `key` in the unit's `[section]` (in order). */
export function unitValues(unit: string, section: string, key: string): string[] {
  const out: string[] = [];
  let current = "";
  for (const raw of unit.split("\n")) {
    const line = raw.trim();
    const head = /^\[(.+)\]$/.exec(line);
    if (head) current = head[1];
    else if (current === section && line.startsWith(`${key}=`)) {
      out.push(line.slice(key.length + 1));
    }
  }
  return out;
}

/** One `ExecStart=` command line as an argv, with systemd's variable expansion. */
export function execArgv(line: string, env: Record<string, string>): string[] {
  const argv: string[] = [];
  for (const word of line.trim().split(/\s+/)) {
    const whole = /^\$\{(\w+)\}$/.exec(word) ?? /^\$(\w+)$/.exec(word);
    if (whole && word.startsWith("${")) argv.push(env[whole[1]] ?? "");
    else if (whole) argv.push(...(env[whole[1]] ?? "").split(/\s+/).filter(Boolean));
    else argv.push(word.replace(/\$\{(\w+)\}/g, (_m, k) => env[k] ?? ""));
  }
  return argv;
}

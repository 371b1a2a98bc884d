/**
 * The command blocks of the operator's documents (README.md,
 * docs/operations.md), each with the annotation that says where the tests
 * run it: the HTML comment before its fence (a blank line between is fine),
 * `<!-- test: host -->` (tests/host/docs_test.ts), `<!-- test: vm -->` (VM
 * suite 49), `<!-- test: cron -->` (the shipped cron file) or
 * `<!-- test: skip: why -->`. A block without one fails
 * tests/unit/doc_blocks_test.ts, so a new documented command is always
 * classified. The substitutions turn the documents' example paths and ids
 * into a scratch directory's.
 *
 * @module
 */

import { fileURLToPath } from "node:url";

/** One fenced block of a document. */
export interface DocBlock {
  /** The document, relative to the repository root. */
  doc: string;
  /** 1-based line of the opening fence. */
  line: number;
  /** The fence's language (`sh`, `cron`, `ts`...). */
  lang: string;
  /** The block's text, without the fences and the list indentation. */
  text: string;
  /** Where it runs (`host`, `vm`, `cron`, `skip`), or null when not annotated. */
  where: "host" | "vm" | "cron" | "skip" | null;
  /** The reason of a `skip`. */
  reason: string;
}

/** The documents whose command blocks are tested. */
export const DOCS = ["README.md", "docs/operations.md"];

/** The repository root. */
export const ROOT: string = fileURLToPath(new URL("..", import.meta.url));

/** Every fenced block of `doc` (a path relative to the root). */
export async function docBlocks(doc: string): Promise<DocBlock[]> {
  const lines = (await Deno.readTextFile(`${ROOT}${doc}`)).split("\n");
  const out: DocBlock[] = [];
  for (let i = 0; i < lines.length; i++) {
    const open = /^(\s*)```(\w*)/.exec(lines[i]);
    if (!open) continue;
    const indent = open[1].length;
    const body: string[] = [];
    let j = i + 1;
    for (; j < lines.length && !/^\s*```\s*$/.test(lines[j]); j++) {
      body.push(lines[j].slice(indent));
    }
    // The annotation: the line before the fence, or before the blank line deno fmt puts there.
    let k = i - 1;
    while (k >= 0 && lines[k].trim() === "") k--;
    const note = /<!--\s*test:\s*(host|vm|cron|skip)(?::\s*(.*?))?\s*-->/.exec(lines[k] ?? "");
    out.push({
      doc,
      line: i + 1,
      lang: open[2],
      text: body.join("\n"),
      where: (note?.[1] as DocBlock["where"]) ?? null,
      reason: note?.[2] ?? "",
    });
    i = j;
  }
  return out;
}

/** The example values of the documents and what a test run puts in their place. */
export interface Sandbox {
  /** Scratch directory. */
  dir: string;
  /** The repository's full id standing for the documents' `20261124T020000123Z-0a1b2c3d`. */
  id: string;
  /** The clone (for `/opt/blksnap`). */
  clone: string;
}

/** `text` with the documents' example paths and ids made real. */
export function substitute(text: string, s: Sandbox): string {
  return text
    .replaceAll("20261124T020000123Z-0a1b2c3d", s.id)
    .replaceAll("0a1b2c3d", s.id.slice(-8))
    .replaceAll("/backup/repo", `${s.dir}/repo`)
    .replaceAll("/var/tmp", `${s.dir}/tmp`)
    .replaceAll("/mnt/restore", `${s.dir}/mnt`)
    .replaceAll("/opt/blksnap", s.clone);
}

/** The documents' example id, for when the repository has no backup yet. */
const EXAMPLE_ID = "20261124T020000123Z-0a1b2c3d";

/** The full id of the oldest backup in the local repository `repo`, or the example id. */
export async function oldestBackupId(repo: string): Promise<string> {
  const names: string[] = [];
  try {
    for await (const e of Deno.readDir(`${repo}/backups`)) names.push(e.name);
  } catch {
    // no repository yet
  }
  const manifests = names.filter((n) => n.endsWith(".json")).sort();
  return manifests.length > 0 ? manifests[0].slice(0, -5) : EXAMPLE_ID;
}

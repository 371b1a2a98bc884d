/**
 * `blksnap completion bash|zsh|fish`: a shell completion script made from
 * the command tree, so it always matches the commands and options.
 *
 * ```sh
 * blksnap completion bash > /etc/bash_completion.d/blksnap
 * blksnap completion zsh > "${fpath[1]}/_blksnap"
 * blksnap completion fish > ~/.config/fish/completions/blksnap.fish
 * ```
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import type { CliContext } from "../_output.ts";

/** A command path (`""`, `"backup"`, `"snapshot create"`) and what may follow it. */
interface Node {
  path: string;
  subcommands: { name: string; description: string }[];
  options: { long: string | undefined; short: string | undefined; description: string }[];
}

function nodes(cmd: CommandUnknownOpts, prefix = ""): Node[] {
  const root = cmd.parent === null;
  const path = root ? "" : `${prefix}${prefix ? " " : ""}${cmd.name()}`;
  const options = cmd.options.map((o) => ({
    long: o.long,
    short: o.short,
    description: o.description,
  }));
  options.push({ long: "--help", short: "-h", description: "display help" });
  const out: Node[] = [{
    path,
    subcommands: cmd.commands.map((c) => ({ name: c.name(), description: c.description() })),
    options,
  }];
  for (const c of cmd.commands) out.push(...nodes(c, path));
  return out;
}

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** The bash (and, through bashcompinit, zsh) completion script for `program`. */
export function bashCompletion(program: CommandUnknownOpts): string {
  const cases = nodes(program).map((n) => {
    const words = [
      ...n.subcommands.map((s) => s.name),
      ...n.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x)),
    ];
    return `    ${shellQuote(n.path)}) words=${shellQuote(words.join(" "))} ;;`;
  });
  const twoLevel = nodes(program).filter((n) => n.path && n.subcommands.length > 0)
    .map((n) => n.path);
  return `# bash completion for blksnap (made by \`blksnap completion bash\`)
_blksnap() {
  local cur path="" w i words
  cur="\${COMP_WORDS[COMP_CWORD]}"
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    case "$w" in -*) continue ;; esac
    if [ -z "$path" ]; then path="$w"
    else
      case " ${twoLevel.join(" ")} " in *" $path "*) path="$path $w" ;; esac
    fi
  done
  case "$path" in
${cases.join("\n")}
    *) words="" ;;
  esac
  COMPREPLY=($(compgen -W "$words" -- "$cur"))
}
complete -o default -F _blksnap blksnap
`;
}

/** The zsh script: the bash one through zsh's bashcompinit. */
export function zshCompletion(program: CommandUnknownOpts): string {
  return `#compdef blksnap
# zsh completion for blksnap (made by \`blksnap completion zsh\`)
autoload -U +X bashcompinit && bashcompinit
${bashCompletion(program)}`;
}

/** The fish completion script for `program`. */
export function fishCompletion(program: CommandUnknownOpts): string {
  const lines = ["# fish completion for blksnap (made by `blksnap completion fish`)"];
  const desc = (s: string) => shellQuote(s.split(/[;(]/)[0].trim().slice(0, 60));
  for (const n of nodes(program)) {
    const words = n.path.split(" ").filter(Boolean);
    const cond = words.length === 0
      ? "__fish_use_subcommand"
      : `__fish_seen_subcommand_from ${words.at(-1)}`;
    for (const s of n.subcommands) {
      lines.push(
        `complete -c blksnap -f -n ${shellQuote(cond)} -a ${s.name} -d ${desc(s.description)}`,
      );
    }
    for (const o of n.options) {
      const flags = [o.long ? `-l ${o.long.slice(2)}` : "", o.short ? `-s ${o.short.slice(1)}` : ""]
        .filter(Boolean).join(" ");
      lines.push(`complete -c blksnap -n ${shellQuote(cond)} ${flags} -d ${desc(o.description)}`);
    }
  }
  return lines.join("\n") + "\n";
}

/** The `completion` command. */
export function completionCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("completion")
    .description("print a shell completion script: bash, zsh or fish")
    .addArgument(
      new Command().createArgument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]),
    )
    .action((shell, _opts, cmd) => {
      let program = cmd as CommandUnknownOpts;
      while (program.parent) program = program.parent;
      const make = { bash: bashCompletion, zsh: zshCompletion, fish: fishCompletion }[
        shell as "bash" | "zsh" | "fish"
      ];
      ctx.io.stdout(make(program));
    });
}

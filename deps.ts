/**
 * Every third-party module the CLI and the library import, with full `npm:`
 * specifiers and exact versions. Files are imported by URL too (`deno run
 * https://.../cli/main.ts`), where the clone's import map does not apply:
 * a bare specifier would not resolve there, a full one does. To change a
 * version, change it here (and `deno.lock`). Test-only packages are in
 * tests/_deps.ts, so an operator's run never downloads them.
 *
 * @module
 */

export {
  Command,
  CommanderError,
  type CommandUnknownOpts,
  InvalidArgumentError,
  Option,
} from "npm:@commander-js/extra-typings@15.1.0";

// Untyped on purpose: @types/cli-progress pulls in a newer @types/node, which
// would replace Deno's own node typings for the whole program.
export { default as cliProgress } from "npm:cli-progress@3.12.0";

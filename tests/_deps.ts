/**
 * Third-party modules only the tests import (full `npm:` specifiers, exact
 * versions); the runtime ones are in deps.ts.
 *
 * @module
 */

export { default as fc } from "npm:fast-check@4.10.2";

import assert from "node:assert/strict";
import { CommanderError, InvalidArgumentError } from "../../../deps.ts";
import {
  describeError,
  errorCodeOf,
  ExitCode,
  exitCodeOf,
  UsageError,
} from "../../../cli/_exit.ts";
import { BlksnapError } from "../../../lib/errors.ts";
import { RepoError } from "../../../lib/backup/mod.ts";

Deno.test("ExitCode is the documented table", () => {
  assert.deepEqual(ExitCode, {
    Ok: 0,
    Failure: 1,
    Usage: 2,
    Damage: 3,
    Locked: 4,
    Sigint: 130,
    Sigterm: 143,
  });
});

Deno.test("exitCodeOf() maps usage errors to 2 and help/version to 0", () => {
  assert.deepEqual(exitCodeOf(new CommanderError(1, "commander.unknownOption", "x")), 2);
  assert.deepEqual(
    exitCodeOf(new CommanderError(1, "commander.missingMandatoryOptionValue", "x")),
    2,
  );
  assert.deepEqual(exitCodeOf(new InvalidArgumentError("bad")), 2);
  assert.deepEqual(exitCodeOf(new CommanderError(0, "commander.helpDisplayed", "x")), 0);
  assert.deepEqual(exitCodeOf(new CommanderError(0, "commander.version", "0.1.0")), 0);
  assert.deepEqual(exitCodeOf(new UsageError("need --repo")), 2);
  assert.deepEqual(exitCodeOf(new RangeError("timeout out of range")), 2);
  assert.deepEqual(exitCodeOf(new RepoError("INVALID", "chunk size")), 2);
});

Deno.test("exitCodeOf() maps runtime errors to 1 and a held lock to 4", () => {
  assert.deepEqual(exitCodeOf(new BlksnapError(16, "Tracker.attach")), 1);
  assert.deepEqual(exitCodeOf(new RepoError("CORRUPT", "bad index")), 1);
  assert.deepEqual(exitCodeOf(new RepoError("IO", "disk full")), 1);
  assert.deepEqual(exitCodeOf(new RepoError("LOCKED", "locked")), 4);
  assert.deepEqual(exitCodeOf(new Error("anything")), 1);
  assert.deepEqual(exitCodeOf(new TypeError("bug")), 1);
  assert.deepEqual(exitCodeOf("a string"), 1);
});

Deno.test("describeError() shows a BlksnapError's operation, code and errno", () => {
  const e = new BlksnapError(16, "Tracker.attach");
  const text = describeError(e);
  assert.match(text, /Tracker\.attach/);
  assert.match(text, /EBUSY/);
  assert.match(text, /errno 16/);
  assert.deepEqual(errorCodeOf(e), "EBUSY");
  assert.deepEqual(
    describeError(new RepoError("LOCKED", "Repository is locked")),
    "LOCKED: Repository is locked; if no blksnap runs there any more (a crashed host), remove " +
      "the lock with `blksnap unlock --force`",
  );
  assert.deepEqual(errorCodeOf(new RepoError("LOCKED", "x")), "LOCKED");
  assert.deepEqual(errorCodeOf(new Error("x")), null);
});

Deno.test("describeError() explains a snapshot request's EDEADLK, EBUSY and EEXIST in a sentence", () => {
  assert.match(
    describeError(new BlksnapError(35, "Snapshot.add")),
    /EDEADLK.*errno 35.*rests on a device of this snapshot/,
  );
  assert.match(describeError(new BlksnapError(35, "Snapshot.take")), /copy-on-write would wait/);
  assert.match(describeError(new BlksnapError(16, "Snapshot.add")), /partition and its whole disk/);
  assert.match(describeError(new BlksnapError(17, "Snapshot.add")), /destroy that snapshot first/);
  // Not a snapshot request: the errno's own text only.
  assert.doesNotMatch(describeError(new BlksnapError(16, "Tracker.attach")), /partition/);
});

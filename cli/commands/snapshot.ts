/**
 * `blksnap snapshot ...`: create, add, take, destroy, collect, info,
 * wait-event and watch, the upstream tool's `snapshot_*` commands.
 *
 * @module
 */

import { Command, type CommandUnknownOpts } from "../../deps.ts";
import { BlksnapError } from "../../lib/errors.ts";
import { Snapshot, type SnapshotEvent } from "../../lib/snapshot.ts";
import { Tracker } from "../../lib/tracker.ts";
import { ExitCode } from "../_exit.ts";
import { type CliContext, keyValues, report, toJson } from "../_output.ts";
import { parseCount, parseSize, parseUuidArg } from "../_size.ts";

/** One line per event, upstream style. */
export function describeEvent(event: SnapshotEvent): string {
  switch (event.type) {
    case "corrupted":
      return `event=corrupted device=${event.device.major}:${event.device.minor} ` +
        `error=${event.error} time=${event.time}`;
    case "noSpace":
      return `event=no_space requested_sectors=${event.requestedSectors} time=${event.time}`;
    default:
      return `event=${event.code} time=${event.time}`;
  }
}

function isGone(e: unknown): boolean {
  return e instanceof BlksnapError && (e.code === "ESRCH" || e.code === "ENODEV");
}

function createCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("create")
    .description("create a snapshot (not yet taken) and add devices to it; prints its id")
    .requiredOption(
      "-f, --file <path>",
      "difference storage: a directory (unnamed temporary file), a regular file or a block device",
    )
    .requiredOption(
      "-l, --limit <size>",
      "most the difference storage may grow to, e.g. 1G",
      parseSize,
    )
    .option("-d, --device <path...>", "devices to add (their trackers are attached if needed)")
    .action((opts) => {
      const devices = opts.device ?? [];
      for (const d of devices) {
        using t = Tracker.open(d);
        t.attach();
      }
      const snapshot = Snapshot.create({ diffStorage: opts.file, limit: opts.limit, devices });
      const id = snapshot.id;
      snapshot.close(); // the snapshot lives on until `snapshot destroy`
      report(ctx, { id, devices, diffStorage: opts.file, limit: opts.limit }, id);
    });
}

function addCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("add")
    .description(
      "add a device to a snapshot that is not taken yet (attaching its tracker if needed)",
    )
    .requiredOption("-i, --id <uuid>", "snapshot id", parseUuidArg)
    .requiredOption("-d, --device <path>", "block device")
    .action((opts) => {
      using tracker = Tracker.open(opts.device);
      const attached = tracker.attach();
      using snapshot = Snapshot.open(opts.id);
      snapshot.add(tracker);
      report(
        ctx,
        { id: opts.id, device: opts.device, attached },
        `${opts.device}: added to ${opts.id}${attached ? " (tracker attached)" : ""}`,
      );
    });
}

function takeCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("take")
    .description("take a snapshot: all its devices at the same instant; creates the images")
    .requiredOption("-i, --id <uuid>", "snapshot id", parseUuidArg)
    .action((opts) => {
      using snapshot = Snapshot.open(opts.id);
      snapshot.take();
      report(ctx, { id: opts.id, taken: true }, `${opts.id}: taken`);
    });
}

function destroyCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("destroy")
    .description("destroy a snapshot: remove its images, release its storage; trackers stay")
    .requiredOption("-i, --id <uuid>", "snapshot id", parseUuidArg)
    .action((opts) => {
      Snapshot.open(opts.id).destroy();
      report(ctx, { id: opts.id, destroyed: true }, `${opts.id}: destroyed`);
    });
}

function collectCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("collect")
    .description("list the ids of all snapshots")
    .action(() => {
      const ids = Snapshot.collect();
      report(ctx, { snapshots: ids }, ids);
    });
}

function infoCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("info")
    .description("a device's snapshot state: its image and error code")
    .requiredOption("-d, --device <path>", "block device in a snapshot")
    .option("--field <name>", "print only image or error_code")
    .action((opts) => {
      using tracker = Tracker.open(opts.device);
      const info = tracker.snapshotInfo();
      const image = info.image === null ? null : `/dev/${info.image}`;
      const fields: Record<string, unknown> = {
        error_code: info.errorCode,
        image: image ?? "",
      };
      let lines = keyValues(fields);
      if (opts.field !== undefined) {
        if (!(opts.field in fields)) {
          throw new RangeError(`--field must be image or error_code, got ${opts.field}`);
        }
        lines = [String(fields[opts.field])];
      }
      report(ctx, { device: opts.device, ...info, imagePath: image }, lines);
    });
}

function waitEventCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("wait-event")
    .alias("waitevent")
    .description("wait for a snapshot's next event; result=ok|timeout|not found")
    .requiredOption("-i, --id <uuid>", "snapshot id", parseUuidArg)
    .requiredOption(
      "-t, --timeout <ms>",
      "how long to wait, in milliseconds",
      (v) => parseCount(v, 0xffff_ffff),
    )
    .action(async (opts) => {
      let event: SnapshotEvent | null = null;
      let result = "ok";
      try {
        using snapshot = Snapshot.open(opts.id);
        event = await snapshot.waitEvent(opts.timeout);
        if (event === null) result = "timeout";
      } catch (e) {
        if (!isGone(e)) throw e;
        result = "not found";
      }
      report(ctx, { id: opts.id, result, event }, [
        `result=${result}`,
        ...(event ? [describeEvent(event)] : []),
      ]);
    });
}

function watchCommand(ctx: CliContext): CommandUnknownOpts {
  return new Command("watch")
    .alias("watcher")
    .description(
      "print a snapshot's events until it is destroyed (exit 0) or corrupted (exit 1); " +
        "with --json one JSON object per line",
    )
    .requiredOption("-i, --id <uuid>", "snapshot id", parseUuidArg)
    .option(
      "--interval <ms>",
      "wait step in milliseconds (default: 1000)",
      (v) => parseCount(v, 0xffff_ffff),
    )
    .action(async (opts) => {
      const snapshot = Snapshot.open(opts.id);
      // Stopped by the run's SIGINT/SIGTERM (cli/main.ts), or by SIGINT when
      // run in-process.
      const stop = new AbortController();
      const onSignal = () => stop.abort();
      ctx.signal.addEventListener("abort", onSignal, { once: true });
      try {
        Deno.addSignalListener("SIGINT", onSignal);
      } catch {
        // signals unavailable (e.g. no permission): Ctrl-C ends the process
      }
      const emit = (obj: Record<string, unknown>, line: string) => {
        if (ctx.json) ctx.io.stdout(toJson(obj, 0) + "\n");
        else ctx.io.stdout(line + "\n");
      };
      try {
        while (!stop.signal.aborted) {
          let event: SnapshotEvent | null;
          try {
            event = await snapshot.waitEvent(opts.interval ?? 1000);
          } catch (e) {
            if (!isGone(e)) throw e;
            emit({ id: opts.id, result: "not found" }, "result=not found (snapshot destroyed)");
            return;
          }
          if (event === null) continue;
          emit({ id: opts.id, result: "ok", event }, describeEvent(event));
          if (event.type === "corrupted") {
            ctx.exitCode = ExitCode.Failure;
            return;
          }
        }
        emit({ id: opts.id, result: "interrupted" }, "result=interrupted");
      } finally {
        try {
          Deno.removeSignalListener("SIGINT", onSignal);
        } catch {
          // not added
        }
        snapshot.close();
      }
    });
}

/** The `snapshot` command and its subcommands. */
export function snapshotCommand(ctx: CliContext): CommandUnknownOpts {
  const cmd = new Command("snapshot")
    .description("create, add to, take, inspect, watch and destroy snapshots");
  for (
    const sub of [
      createCommand(ctx),
      addCommand(ctx),
      takeCommand(ctx),
      destroyCommand(ctx),
      collectCommand(ctx),
      infoCommand(ctx),
      waitEventCommand(ctx),
      watchCommand(ctx),
    ]
  ) cmd.addCommand(sub);
  return cmd;
}

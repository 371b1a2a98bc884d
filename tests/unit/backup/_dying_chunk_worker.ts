// A chunk worker thread (lib/backup/_chunk_worker.ts) that dies with an
// uncaught error at its fourth codec step, like a thread that runs out of
// memory: for workers_fail_test.ts.
/// <reference lib="deno.worker" />
import "../../../lib/backup/_chunk_worker.ts";

// The real handler is an arrow function: it needs no `this`.
const real = self.onmessage as (e: MessageEvent) => void;
let steps = 0;
self.onmessage = (e: MessageEvent) => {
  if (e.data.op !== "init" && ++steps > 3) throw new Error("thread died");
  real(e);
};

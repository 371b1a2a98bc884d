// A chunk worker thread (lib/backup/_chunk_worker.ts) that dies with an
// uncaught error at its fourth codec step, like a thread that runs out of
// memory: for workers_fail_test.ts.
import { thread } from "../../../lib/backup/_chunk_worker.ts";

const real = thread.handle;
let steps = 0;
thread.handle = (m: unknown) => {
  const op = (m as { op: string }).op;
  if (op !== "init" && op !== "drop" && ++steps > 3) throw new Error("thread died");
  real(m);
};

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { getHeapStatistics } from "node:v8";
import { createLogger } from "../../core/logger.ts";
import { parseManagerConfig } from "../../core/manager/config.ts";
import { IdleMemoryReducer } from "../../core/manager/memory.ts";

const MiB = 2 ** 20;
/** Waits with the event loop idle; the looks below count a thread idle below 50% utilisation (margin for a loaded machine and the GC work a burst leaves behind). */
const idle = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Grows the heap by about `mib` MiB of objects, all garbage once it returns. */
function burst(mib: number): number {
  let keep: { id: number; name: string; labels: Record<string, string> }[] = [];
  for (let i = 0; i < mib * 4_000; i++) keep.push({ id: i, name: `object-${i}`, labels: { app: `app-${i % 1000}` } });
  const length = keep.length;
  keep = [];
  return length;
}

describe("IdleMemoryReducer", () => {
  const logger = createLogger("silent");

  it("gives the heap back once the thread is idle after a burst, and not again until the heap grows", async () => {
    const reducer = new IdleMemoryReducer({ logger, growthBytes: 16 * MiB, minIntervalMs: 0, idleUtilization: 0.5 });
    reducer.look(); // the first look has no interval behind it
    burst(64);
    const grown = getHeapStatistics().total_heap_size;
    await idle(1_000);
    const reduction = reducer.look();
    assert.ok(reduction, "an idle look after the burst reduces");
    assert.ok(reduction.heapBeforeBytes >= grown * 0.9, `heap before ${reduction.heapBeforeBytes} vs ${grown} after the burst`);
    assert.ok(
      reduction.heapAfterBytes < reduction.heapBeforeBytes - 16 * MiB,
      `heap ${reduction.heapBeforeBytes / MiB} -> ${reduction.heapAfterBytes / MiB} MiB`,
    );
    await idle(1_000);
    assert.equal(reducer.look(), undefined, "no second reduction without new growth");
  });

  it("never pauses a busy thread", async () => {
    const reducer = new IdleMemoryReducer({ logger, growthBytes: 0, minIntervalMs: 0, idleUtilization: 0.5 });
    reducer.look();
    const until = performance.now() + 300;
    while (performance.now() < until) burst(1);
    assert.equal(reducer.look(), undefined, "a look after 300 ms of work does not reduce");
    await idle(1_000);
    assert.ok(reducer.look(), "the next, idle look does");
  });

  it("waits minIntervalMs between reductions", async () => {
    const reducer = new IdleMemoryReducer({ logger, growthBytes: 0, minIntervalMs: 3_600_000, idleUtilization: 0.5 });
    reducer.look();
    await idle(1_000);
    assert.ok(reducer.look());
    burst(32);
    await idle(1_000);
    assert.equal(reducer.look(), undefined);
  });

  it("runs by default; --reduce-memory-when-idle=false turns it off", () => {
    assert.equal(parseManagerConfig([], {}).config.reduceMemoryWhenIdle, true);
    assert.equal(parseManagerConfig(["--reduce-memory-when-idle=false"], {}).config.reduceMemoryWhenIdle, false);
    assert.equal(parseManagerConfig([], { KUBEPLUG_REDUCE_MEMORY_WHEN_IDLE: "false" }).config.reduceMemoryWhenIdle, false);
  });
});

/**
 * Gives memory back after a busy spell: a burst of creates, a relist, a storm of admission reviews.
 *
 * V8 sizes its heap for the work it last saw. A burst grows the young generation to its maximum
 * (twice `--max-semi-space-size`) and leaves garbage in the old one, and V8 shrinks them only at its
 * next collection. An operator that goes quiet allocates almost nothing, so that collection may not
 * come for hours, and the process keeps its peak RSS: measured in bench/, 181 MiB with 1,000 WebApps
 * cached, of which 35 MiB was live heap. Chrome tells V8 when a tab goes idle; Node has no such hook.
 *
 * So each thread that serves (the main thread, the admission thread) watches its own event loop. Once
 * a whole look (`intervalMs`) has been nearly idle and its heap has grown by `growthBytes` since the
 * last reduction, it asks V8 for a memory-reducing collection (`LowMemoryNotification`: full
 * collections that also shrink the young generation and release empty pages). With 1,000 WebApps
 * cached that takes RSS from 175 to 118 MiB (bench/RESULTS.md) in a pause of ~0.1 s of an idle
 * thread (under 1 s with 10,000), at most once per `minIntervalMs`. A busy thread is never paused.
 */
import { type EventLoopUtilization, performance } from "node:perf_hooks";
import { getHeapStatistics, setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import type { Logger } from "../logger.ts";
import type { Runnable } from "../plugin.ts";
import { untilAborted } from "../sleep.ts";

/** V8's gc() (its gc extension); `flavor: "last-resort"` is `Isolate::LowMemoryNotification()`. */
type GcFunction = (options: { type: "major"; execution: "sync"; flavor: "last-resort" }) => void;

let gcFunction: GcFunction | undefined;

/**
 * V8's gc() without `--expose-gc` on the command line (where it would also be a global every plugin
 * sees): the flag is set only while one fresh context is made, which gets gc(), and cleared again.
 * Node has no API that asks V8 to reduce memory; this is the one route to it.
 */
function lowMemoryGc(): GcFunction {
  const global = (globalThis as { gc?: GcFunction }).gc;
  if (global) return global;
  if (!gcFunction) {
    setFlagsFromString("--expose-gc");
    try {
      gcFunction = runInNewContext("gc") as GcFunction;
    } finally {
      setFlagsFromString("--no-expose-gc");
    }
  }
  return gcFunction;
}

/** One memory-reducing collection: the V8 heap before and after, and how long the thread paused. */
export interface Reduction {
  heapBeforeBytes: number;
  heapAfterBytes: number;
  durationMs: number;
}

export interface IdleMemoryReducerOptions {
  logger: Logger;
  /** How often the thread looks at its event loop and heap (default 5 s). */
  intervalMs?: number;
  /** Event-loop utilisation over a look below which the thread counts as idle (default 0.05). */
  idleUtilization?: number;
  /** Heap growth since the last reduction (or since start) that makes one worth its pause (default 16 MiB). */
  growthBytes?: number;
  /** Least time between two reductions (default 60 s). */
  minIntervalMs?: number;
}

/** See the module comment. Runs on every replica (not only the leader). */
export class IdleMemoryReducer implements Runnable {
  readonly name = "idle-memory-reducer";
  readonly needsLeaderElection = false;
  private readonly intervalMs: number;
  private readonly idleUtilization: number;
  private readonly growthBytes: number;
  private readonly minIntervalMs: number;
  private lastLoop: EventLoopUtilization | undefined;
  /** The heap right after the last reduction; 0 before the first, so start-up's garbage goes too. */
  private baselineBytes = 0;
  private lastReductionAt = Number.NEGATIVE_INFINITY;
  private readonly logger: Logger;

  constructor(options: IdleMemoryReducerOptions) {
    this.logger = options.logger;
    this.intervalMs = options.intervalMs ?? 5_000;
    this.idleUtilization = options.idleUtilization ?? 0.05;
    this.growthBytes = options.growthBytes ?? 16 * 2 ** 20;
    this.minIntervalMs = options.minIntervalMs ?? 60_000;
  }

  async start(signal: AbortSignal): Promise<void> {
    this.lastLoop = performance.eventLoopUtilization();
    const timer = setInterval(() => this.look(), this.intervalMs);
    // Never what keeps a process alive.
    timer.unref();
    await untilAborted(signal);
    clearInterval(timer);
  }

  /** One look: reduces when the last interval was idle and the heap has grown enough. */
  look(): Reduction | undefined {
    const loop = performance.eventLoopUtilization();
    const utilization = this.lastLoop ? performance.eventLoopUtilization(loop, this.lastLoop).utilization : 1;
    this.lastLoop = loop;
    if (utilization >= this.idleUtilization) return undefined;
    if (performance.now() - this.lastReductionAt < this.minIntervalMs) return undefined;
    const heapBeforeBytes = getHeapStatistics().total_heap_size;
    if (heapBeforeBytes < this.baselineBytes + this.growthBytes) return undefined;
    let gc: GcFunction;
    try {
      gc = lowMemoryGc();
    } catch (err) {
      // A Node whose V8 flags cannot change after start: leave memory to V8 from now on.
      this.logger.warn({ err: String(err) }, "cannot ask V8 to reduce memory; idle memory reduction is off");
      this.baselineBytes = Number.POSITIVE_INFINITY;
      return undefined;
    }
    const started = performance.now();
    gc({ type: "major", execution: "sync", flavor: "last-resort" });
    const durationMs = performance.now() - started;
    const heapAfterBytes = getHeapStatistics().total_heap_size;
    this.baselineBytes = heapAfterBytes;
    this.lastReductionAt = performance.now();
    // The pause is not utilisation the next look should see as work.
    this.lastLoop = performance.eventLoopUtilization();
    const reduction = { heapBeforeBytes, heapAfterBytes, durationMs };
    this.logger.debug(
      { heapBeforeMiB: mib(heapBeforeBytes), heapAfterMiB: mib(heapAfterBytes), pauseMs: Math.round(durationMs) },
      "idle after a busy spell: gave heap memory back",
    );
    return reduction;
  }
}

const mib = (bytes: number) => Math.round(bytes / 2 ** 20);

import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { describe, it, type TestContext } from "node:test";
import { fileURLToPath } from "node:url";
import { exponentialFailureRateLimiter, type RateLimiter } from "../../core/controller/ratelimiter.ts";
import { WorkQueue, type WorkQueueGauges, type WorkQueueMetrics } from "../../core/controller/workqueue.ts";

/** Lets pending promise callbacks run, so "not resolved yet" is checked after they had every chance. */
const settle = () => new Promise<void>((resolve) => setImmediate(resolve));

/** Tracks whether a promise has settled, and with what. */
function track<T>(promise: Promise<T>) {
  const state: { settled: boolean; value?: T } = { settled: false };
  void promise.then((value) => Object.assign(state, { settled: true, value }));
  return state;
}

/** Mocked setTimeout and Date; the queue's clock reads the mocked Date so delays and ready times agree. */
function mockTime(t: TestContext) {
  t.mock.timers.enable({ apis: ["setTimeout", "Date"], now: 0 });
  return { clock: { now: () => Date.now() }, tick: (ms: number) => t.mock.timers.tick(ms) };
}

describe("WorkQueue: dirty and processing", () => {
  it("hands out keys in FIFO order and deduplicates dirty keys", async () => {
    const q = new WorkQueue();
    for (const key of ["a", "b", "a", "c", "b"]) q.add(key);
    assert.equal(q.len(), 3);
    assert.deepEqual([await q.get(), await q.get(), await q.get()], ["a", "b", "c"]);
    assert.equal(q.len(), 0);
  });

  it("a key added while processing is only marked dirty, and done puts it back", async () => {
    const q = new WorkQueue();
    q.add("a");
    assert.equal(await q.get(), "a");
    q.add("a");
    q.add("a");
    assert.equal(q.len(), 0, "a processing key must not be handed out again");
    assert.equal(q.depth(), 1);
    q.done("a");
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    assert.equal(q.len(), 0);
    assert.equal(q.depth(), 0);
  });

  it("never gives one key to two workers at once", async () => {
    const q = new WorkQueue();
    const first = track(q.get());
    const second = track(q.get());
    q.add("a");
    await settle();
    assert.deepEqual(first, { settled: true, value: "a" });
    q.add("a");
    await settle();
    assert.equal(second.settled, false);
    q.done("a");
    await settle();
    assert.deepEqual(second, { settled: true, value: "a" });
  });

  it("adds of one key in the same turn, while a worker waits, hand it out once and leave it clean", async () => {
    const q = new WorkQueue();
    const worker = track(q.get());
    // One event's handlers: a source that maps synchronously, then one whose map resolves later in the turn.
    q.add("a");
    await Promise.resolve();
    q.add("a");
    await settle();
    assert.deepEqual(worker, { settled: true, value: "a" });
    assert.equal(q.depth(), 0, "the second add must coalesce, not mark the key dirty under its worker");
    q.done("a");
    assert.equal(q.len(), 0, "nothing is left to run again");
  });

  it("shutDown hands keys added this turn to the workers already waiting", async () => {
    const q = new WorkQueue();
    const waiting = [q.get(), q.get()];
    q.add("a");
    q.shutDown();
    assert.deepEqual(await Promise.all(waiting), ["a", undefined]);
  });

  it("get waits for an add", async () => {
    const q = new WorkQueue();
    const got = track(q.get());
    await settle();
    assert.equal(got.settled, false);
    q.add("a");
    await settle();
    assert.deepEqual(got, { settled: true, value: "a" });
  });

  it("done of a key that is not processing changes nothing", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.done("a");
    q.done("b");
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    assert.equal(q.len(), 0);
  });
});

describe("WorkQueue: shutdown", () => {
  it("shutDown refuses new keys, drains the queue, then get resolves undefined", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    q.shutDown();
    assert.equal(q.isShuttingDown(), true);
    q.add("c");
    assert.deepEqual([await q.get(), await q.get(), await q.get(), await q.get()], ["a", "b", undefined, undefined]);
  });

  it("shutDown wakes waiting workers with undefined", async () => {
    const q = new WorkQueue();
    const waiting = [q.get(), q.get()];
    q.shutDown();
    assert.deepEqual(await Promise.all(waiting), [undefined, undefined]);
  });

  it("a key re-added before shutdown is still handed out after its done", async () => {
    const q = new WorkQueue();
    q.add("a");
    await q.get();
    q.add("a");
    q.shutDown();
    q.done("a");
    assert.equal(await q.get(), "a");
    assert.equal(await q.get(), undefined);
  });

  it("shutDownWithDrain resolves only once every processing key is done", async () => {
    const q = new WorkQueue();
    q.add("a");
    q.add("b");
    await q.get();
    await q.get();
    const drained = track(q.shutDownWithDrain());
    q.done("a");
    await settle();
    assert.equal(drained.settled, false);
    q.done("b");
    await settle();
    assert.equal(drained.settled, true);
  });

  it("shutDownWithDrain resolves at once when nothing is processing, and shutDown ends a drain wait", async () => {
    await new WorkQueue().shutDownWithDrain();
    const q = new WorkQueue();
    q.add("a");
    await q.get();
    const drained = track(q.shutDownWithDrain());
    q.shutDown();
    await settle();
    assert.equal(drained.settled, true);
  });

  it("a stopped queue with a pending delayed add does not keep the process alive", () => {
    const queueUrl = new URL("../../core/controller/workqueue.ts", import.meta.url).href;
    const script = `import { WorkQueue } from ${JSON.stringify(queueUrl)};
      const q = new WorkQueue(); q.addAfter("a", 3_600_000); q.addRateLimited("b"); void q.get();`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("../..", import.meta.url)),
      encoding: "utf8",
      timeout: 60_000,
    });
    assert.equal(child.signal, null, "the child had to be killed: a timer kept it alive");
    assert.equal(child.status, 0, child.stderr);
  });
});

describe("WorkQueue: delayed and rate-limited adds", () => {
  it("addAfter adds the key once its delay has passed", (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock });
    q.addAfter("a", 100);
    tick(99);
    assert.equal(q.len(), 0);
    tick(1);
    assert.equal(q.len(), 1);
    q.addAfter("b", 0);
    assert.equal(q.len(), 2, "no delay means an immediate add");
  });

  it("addAfter keeps the earliest pending time: a later request is dropped", async (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock });
    q.addAfter("a", 10);
    q.addAfter("a", 50);
    tick(10);
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    tick(100);
    assert.equal(q.len(), 0, "the later request must have been dropped");
  });

  it("addAfter keeps the earliest pending time: an earlier request replaces a later one", async (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock });
    q.addAfter("a", 50);
    tick(20);
    q.addAfter("a", 10); // ready at 30, before 50
    tick(10);
    assert.equal(q.len(), 1);
    assert.equal(await q.get(), "a");
    q.done("a");
    tick(100);
    assert.equal(q.len(), 0, "the replaced request must not fire too");
  });

  it("shutDown cancels delayed adds", (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock });
    q.addAfter("a", 10);
    q.shutDown();
    q.addAfter("b", 10);
    tick(100);
    assert.equal(q.len(), 0);
  });

  it("shutDown clears the timers of delayed adds", (t) => {
    const clearTimeout = t.mock.method(globalThis, "clearTimeout");
    const q = new WorkQueue();
    q.addAfter("a", 3_600_000);
    q.addAfter("b", 3_600_000);
    q.shutDown();
    assert.equal(clearTimeout.mock.callCount(), 2);
  });

  it("addRateLimited waits the limiter's delay; numRequeues and forget delegate to the limiter", (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock, rateLimiter: exponentialFailureRateLimiter(5, 1000) });
    q.addRateLimited("a");
    tick(4);
    assert.equal(q.len(), 0);
    tick(1);
    assert.equal(q.len(), 1);
    q.addRateLimited("a");
    q.addRateLimited("a");
    assert.equal(q.numRequeues("a"), 3);
    q.forget("a");
    assert.equal(q.numRequeues("a"), 0);
  });

  it("uses the default controller limiter when none is given", (t) => {
    const { clock, tick } = mockTime(t);
    const q = new WorkQueue({ clock });
    q.addRateLimited("a");
    q.addRateLimited("b");
    q.addRateLimited("b");
    tick(5);
    assert.equal(q.len(), 2);
    assert.equal(q.numRequeues("b"), 2);
  });

  it("addRateLimited during shutdown records nothing", () => {
    const asked: string[] = [];
    const rateLimiter: RateLimiter<string> = {
      when: (key) => {
        asked.push(key);
        return 0;
      },
      forget() {},
      numRequeues: () => 0,
    };
    const q = new WorkQueue({ rateLimiter });
    q.shutDown();
    q.addRateLimited("a");
    assert.deepEqual(asked, []);
    assert.equal(q.len(), 0);
  });
});

describe("WorkQueue: metrics hook", () => {
  it("reports adds, queue and work durations, retries and live gauges", async () => {
    let now = 0;
    const events: string[] = [];
    let gauges: WorkQueueGauges | undefined;
    const metrics: WorkQueueMetrics = {
      add: (key) => void events.push(`add ${key}`),
      get: (key, queuedSeconds) => void events.push(`get ${key} ${queuedSeconds}`),
      done: (key, workSeconds) => void events.push(`done ${key} ${workSeconds}`),
      retry: () => void events.push("retry"),
      bind: (g) => {
        gauges = g;
      },
    };
    const q = new WorkQueue({ metrics, clock: { now: () => now } });
    assert.equal(gauges, q);
    q.add("a");
    q.add("a");
    q.add("b");
    assert.equal(gauges?.depth(), 2);
    now = 2000;
    await q.get();
    now = 3000;
    await q.get();
    now = 5000;
    assert.equal(gauges?.depth(), 0);
    assert.equal(gauges?.unfinishedWorkSeconds(), 3 + 2);
    assert.equal(gauges?.longestRunningProcessorSeconds(), 3);
    q.done("a");
    q.addAfter("a", 0);
    q.done("b");
    assert.equal(gauges?.unfinishedWorkSeconds(), 0);
    assert.equal(gauges?.longestRunningProcessorSeconds(), 0);
    assert.deepEqual(events, ["add a", "add b", "get a 2", "get b 3", "done a 3", "retry", "add a", "done b 2"]);
  });
});

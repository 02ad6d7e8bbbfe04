/**
 * The per-controller work queue: client-go's `queue.go`, `delaying_queue.go` and
 * `rate_limiting_queue.go` in one class, keyed by strings (namespace/name).
 *
 * Guarantees:
 * - A key is `dirty` (needs work) and/or `processing` (a worker has it); the ready queue holds exactly
 *   the dirty keys that are not processing, in the order they became ready (FIFO).
 * - `add` of a dirty key is a no-op; `add` of a processing key only marks it dirty, and `done` puts it
 *   back in the queue. So one key is never handled by two workers at once, and a change that arrives
 *   while a key is handled is never lost.
 * - `addAfter`: for a key already waiting, the earlier ready time wins and later ones are dropped.
 * - A key that becomes ready while workers wait is handed to one on the next turn of the event loop
 *   (`setImmediate`), not at once: adds of the same key made while one event is handled (several
 *   sources mapping to one owner, a map that resolves asynchronously from the cache) coalesce into
 *   one reconcile instead of marking the key dirty again under the worker that just got it. client-go
 *   gets the same from the time a woken goroutine takes to run; the cost here is one turn.
 * - After `shutDown` nothing is added; `get` hands out what is left in the queue, then `undefined`.
 *   Delayed adds are cancelled and their timers cleared, and every timer is unref'd, so a queue never
 *   keeps the process alive.
 * Assumptions: workers call `done(key)` in `finally` for every key `get` gave them, and `forget(key)`
 * after a success (client-go's contract).
 * Caveats: `shutDownWithDrain` waits only for keys being processed; keys still queued are handed out by
 * `get` as usual. Metrics are reported through the `WorkQueueMetrics` hook; this module knows no
 * metrics library.
 */
import { type Clock, defaultControllerRateLimiter, monotonicClock, type RateLimiter } from "./ratelimiter.ts";

/** Read-only views of a queue, read on demand (e.g. at scrape time) by a metrics module. */
export interface WorkQueueGauges {
  /** Keys added and not yet handed out (`workqueue_depth`): the dirty keys. */
  depth(): number;
  /** Sum of the seconds every processing key has been processed so far (`workqueue_unfinished_work_seconds`). */
  unfinishedWorkSeconds(): number;
  /** Seconds the longest-running processing key has been processed (`workqueue_longest_running_processor_seconds`). */
  longestRunningProcessorSeconds(): number;
}

/**
 * Callbacks a metrics module implements to map a queue to the Prometheus `workqueue_*` metrics
 * (client-go `queueMetrics`). All are called synchronously by the queue and must not throw.
 */
export interface WorkQueueMetrics {
  /** A key became dirty (`workqueue_adds_total`; depth grew by one). */
  add(key: string): void;
  /** A worker got `key`, which had waited `queuedSeconds` since it became dirty (`workqueue_queue_duration_seconds`; depth shrank by one). */
  get(key: string, queuedSeconds: number): void;
  /** A worker finished `key` after `workSeconds` (`workqueue_work_duration_seconds`). */
  done(key: string, workSeconds: number): void;
  /** A delayed or rate-limited add was requested (`workqueue_retries_total`). */
  retry(): void;
  /** Called once, when the queue is built, with the gauges to read later. */
  bind(gauges: WorkQueueGauges): void;
}

/** Options for `WorkQueue`; all have defaults. */
export interface WorkQueueOptions {
  /** Decides the delay of `addRateLimited`; defaults to `defaultControllerRateLimiter()`. */
  rateLimiter?: RateLimiter<string>;
  /** Receives the queue's metrics; none by default. */
  metrics?: WorkQueueMetrics;
  /** Times queue and work durations and delayed adds; defaults to `monotonicClock`. */
  clock?: Clock;
}

/** A deduplicating, delaying, rate-limited queue of string keys (see the module header). */
export class WorkQueue implements WorkQueueGauges {
  readonly #rateLimiter: RateLimiter<string>;
  readonly #metrics: WorkQueueMetrics | undefined;
  readonly #clock: Clock;
  #queue: string[] = [];
  /** Dirty keys and when each became dirty. */
  readonly #dirty = new Map<string, number>();
  /** Processing keys and when each was handed out. */
  readonly #processing = new Map<string, number>();
  /** Delayed adds: the ready time and timer of each waiting key. */
  readonly #waiting = new Map<string, { readyAt: number; timer: ReturnType<typeof setTimeout> }>();
  #getters: ((key: string | undefined) => void)[] = [];
  /** A hand-out to waiting workers is scheduled for the next turn. */
  #handOutScheduled = false;
  #drainers: (() => void)[] = [];
  #shuttingDown = false;

  /** Builds an empty, running queue. */
  constructor(options: WorkQueueOptions = {}) {
    this.#rateLimiter = options.rateLimiter ?? defaultControllerRateLimiter<string>();
    this.#metrics = options.metrics;
    this.#clock = options.clock ?? monotonicClock;
    this.#metrics?.bind(this);
  }

  /** Marks `key` as needing work; a no-op if it is already dirty or the queue is shutting down. */
  add(key: string): void {
    if (this.#shuttingDown || this.#dirty.has(key)) return;
    this.#metrics?.add(key);
    this.#dirty.set(key, this.#clock.now());
    if (!this.#processing.has(key)) this.#ready(key);
  }

  /** Waits for a key to work on; resolves `undefined` once the queue is shut down and empty. */
  get(): Promise<string | undefined> {
    const key = this.#queue.shift();
    if (key !== undefined) return Promise.resolve(this.#handOut(key));
    if (this.#shuttingDown) return Promise.resolve(undefined);
    return new Promise((resolve) => this.#getters.push(resolve));
  }

  /** Ends the processing of `key`; if it was added meanwhile, it goes back in the queue. Ignores keys not processing. */
  done(key: string): void {
    const startedAt = this.#processing.get(key);
    if (startedAt === undefined) return;
    this.#processing.delete(key);
    this.#metrics?.done(key, this.#seconds(startedAt));
    if (this.#dirty.has(key)) this.#ready(key);
    if (this.#processing.size === 0) this.#releaseDrainers();
  }

  /** Adds `key` after `ms` milliseconds (at once if `ms <= 0`); if `key` is already waiting, the earlier time wins. */
  addAfter(key: string, ms: number): void {
    if (Number.isNaN(ms)) throw new RangeError(`addAfter ms must be a number of milliseconds, got NaN for key ${key}`);
    if (this.#shuttingDown) return;
    this.#metrics?.retry();
    if (ms <= 0) {
      this.add(key);
      return;
    }
    const readyAt = this.#clock.now() + ms;
    const waiting = this.#waiting.get(key);
    if (waiting !== undefined) {
      if (waiting.readyAt <= readyAt) return;
      clearTimeout(waiting.timer);
    }
    const timer = setTimeout(() => {
      this.#waiting.delete(key);
      this.add(key);
    }, ms);
    timer.unref();
    this.#waiting.set(key, { readyAt, timer });
  }

  /** Adds `key` after the delay its rate limiter gives (a retry after a failure). */
  addRateLimited(key: string): void {
    if (this.#shuttingDown) return;
    this.addAfter(key, this.#rateLimiter.when(key));
  }

  /** Ends the backoff of `key` (after a success); does not remove it from the queue. */
  forget(key: string): void {
    this.#rateLimiter.forget(key);
  }

  /** How many times `key` was rate-limited since it was last forgotten. */
  numRequeues(key: string): number {
    return this.#rateLimiter.numRequeues(key);
  }

  /** True while a key needs work or is being worked on (keys waiting out a delay do not count). */
  busy(): boolean {
    return this.#dirty.size > 0 || this.#processing.size > 0;
  }

  /** Keys ready to be handed out (dirty and not processing). */
  len(): number {
    return this.#queue.length;
  }

  /** Keys added and not yet handed out, including keys re-added while processing. */
  depth(): number {
    return this.#dirty.size;
  }

  /** Sum of the seconds every processing key has been processed so far. */
  unfinishedWorkSeconds(): number {
    let total = 0;
    for (const startedAt of this.#processing.values()) total += this.#seconds(startedAt);
    return total;
  }

  /** Seconds the longest-running processing key has been processed; 0 when none is. */
  longestRunningProcessorSeconds(): number {
    let oldest: number | undefined;
    for (const startedAt of this.#processing.values()) oldest = Math.min(oldest ?? startedAt, startedAt);
    return oldest === undefined ? 0 : this.#seconds(oldest);
  }

  /** Stops accepting keys and cancels delayed adds; `get` then drains the queue and resolves `undefined`. */
  shutDown(): void {
    this.#stop();
    // As in client-go, a plain shutdown also ends any shutDownWithDrain wait.
    this.#releaseDrainers();
  }

  /** Shuts down like `shutDown`, then resolves once no key is being processed. */
  shutDownWithDrain(): Promise<void> {
    this.#stop();
    if (this.#processing.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.#drainers.push(resolve));
  }

  /** True once `shutDown` or `shutDownWithDrain` was called. */
  isShuttingDown(): boolean {
    return this.#shuttingDown;
  }

  #stop(): void {
    this.#shuttingDown = true;
    for (const { timer } of this.#waiting.values()) clearTimeout(timer);
    this.#waiting.clear();
    // Keys that became ready this turn go to the workers waiting for them first; the getters left
    // wait on an empty queue, so none of them will ever get a key now.
    this.#handToGetters();
    const getters = this.#getters;
    this.#getters = [];
    for (const resolve of getters) resolve(undefined);
  }

  /** Makes a dirty, not processing key available; waiting workers get it on the next turn (see the header). */
  #ready(key: string): void {
    this.#queue.push(key);
    if (this.#getters.length === 0 || this.#handOutScheduled) return;
    this.#handOutScheduled = true;
    // unref'd like every timer here: a pending hand-out alone must not keep the process alive.
    setImmediate(() => {
      this.#handOutScheduled = false;
      this.#handToGetters();
    }).unref();
  }

  /** Gives queued keys to waiting workers, in order. */
  #handToGetters(): void {
    while (this.#getters.length > 0 && this.#queue.length > 0) {
      const getter = this.#getters.shift() as (key: string | undefined) => void;
      getter(this.#handOut(this.#queue.shift() as string));
    }
  }

  #handOut(key: string): string {
    const now = this.#clock.now();
    const dirtySince = this.#dirty.get(key) ?? now;
    this.#dirty.delete(key);
    this.#processing.set(key, now);
    this.#metrics?.get(key, (now - dirtySince) / 1000);
    return key;
  }

  #releaseDrainers(): void {
    const drainers = this.#drainers;
    this.#drainers = [];
    for (const resolve of drainers) resolve();
  }

  #seconds(since: number): number {
    return Math.max(0, this.#clock.now() - since) / 1000;
  }
}

/**
 * Kubernetes Events about objects (`kubectl describe` shows them), after client-go's recorder.
 *
 * Guarantees: recording never throws and never blocks the caller (the write happens in the
 * background; failures are logged). Writes go out one at a time, in order, through an
 * {@link EventQueue} the manager's recorders share (client-go's broadcaster writes the same way), so
 * a burst of reconciles never sends a burst of Event POSTs competing with the reconciles' own
 * writes. In the manager they also wait while any of its controllers (every plugin's) has a
 * reconcile queued or running (keys waiting out a requeue delay or a backoff do not count), until
 * 100 ms after the last of it, for at most 10 s per Event before its turn in the queue, and not once
 * 500 are waiting: an Event is a note about the job, and on a busy API server each of its writes
 * delays the job's own (500 Events cost a 500-WebApp burst ~10% of its convergence time,
 * bench/README.md). Its timestamps are those of the moment it was recorded, not written. Past 1,000
 * queued Events new ones are dropped, logged and counted in `kubeplug_events_dropped_total`
 * (client-go drops past 1,000 too).
 * A repeat of the same type/reason/message for the same object within 10 minutes increments `count`
 * and `lastTimestamp` of the existing Event instead of creating a new one (client-go's
 * EventCorrelator aggregation).
 * Caveats: aggregation state is per process; after a restart the first repeat creates a new Event.
 */
import { randomBytes } from "node:crypto";
import { EventKind } from "../builtin-kinds.ts";
import type { Client } from "../client/client.ts";
import { isNotFound } from "../client/rest.ts";
import type { Logger } from "../logger.ts";
import type { KubeObject } from "../object.ts";

/** `Normal` for expected progress, `Warning` for something a person should look at. */
export type EventType = "Normal" | "Warning";

/** Records Events; see the module comment. */
export interface EventRecorder {
  /** Records an event about `obj`; `reason` is UpperCamelCase, `message` a sentence for people. */
  event(obj: KubeObject, type: EventType, reason: string, message: string): void;
  /** Writes every pending Event now, held ones included, and resolves when all have finished (tests, shutdown). */
  flush(): Promise<void>;
}

const AGGREGATE_WINDOW_MS = 10 * 60_000;
/** Events waiting to be written beyond which new ones are dropped (client-go's maxQueuedEvents). */
const MAX_QUEUED_EVENTS = 1_000;

/** Settings of an {@link EventQueue}. */
export interface EventQueueOptions {
  /** Events waiting beyond which new ones are dropped (default 1,000, client-go's). */
  max?: number;
  /** Called for each dropped Event (the manager counts them in `kubeplug_events_dropped_total`). */
  onDropped?: () => void;
  /**
   * While this returns true (the manager: a controller has work queued or running), writes wait,
   * until `quietMs` after it last did, for at most `maxDelayMs` per Event, and not while half of
   * `max` are waiting. Polled every `pollMs` while an Event waits.
   */
  holdWhile?: () => boolean;
  /** Default 100 ms. */
  quietMs?: number;
  /** Default 10 s. */
  maxDelayMs?: number;
  /** Default 25 ms. */
  pollMs?: number;
}

/**
 * Event writes waiting their turn: one at a time, in order, at most `max` waiting, and (with
 * `holdWhile`) behind the work that matters more; see {@link EventQueueOptions}.
 */
export class EventQueue {
  private readonly jobs: { run: () => Promise<void>; queuedAt: number }[] = [];
  private running: Promise<void> | undefined;
  private dropped = 0;
  private flushing = 0;
  /** When `holdWhile` was last seen true (performance.now()); -Infinity: never. */
  private lastBusyAt = Number.NEGATIVE_INFINITY;
  private readonly log: Logger;
  private readonly max: number;
  private readonly onDropped: (() => void) | undefined;
  private readonly holdWhile: (() => boolean) | undefined;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  private readonly pollMs: number;

  constructor(log: Logger, options: EventQueueOptions = {}) {
    this.log = log;
    this.max = options.max ?? MAX_QUEUED_EVENTS;
    this.onDropped = options.onDropped;
    this.holdWhile = options.holdWhile;
    this.quietMs = options.quietMs ?? 100;
    this.maxDelayMs = options.maxDelayMs ?? 10_000;
    this.pollMs = options.pollMs ?? 25;
  }

  /** Queues `job` (which must not reject); false when the queue is full and it was dropped. */
  push(job: () => Promise<void>): boolean {
    if (this.jobs.length >= this.max) {
      if (this.dropped++ === 0) this.log.warn({ queued: this.max }, "too many Events waiting to be written: dropping new ones");
      this.onDropped?.();
      return false;
    }
    this.jobs.push({ run: job, queuedAt: performance.now() });
    this.running ??= this.drain();
    return true;
  }

  /** Writes every queued Event now (no waiting on `holdWhile`) and resolves when all have finished. */
  async flush(): Promise<void> {
    this.flushing++;
    try {
      while (this.running) await this.running;
    } finally {
      this.flushing--;
    }
  }

  private async drain(): Promise<void> {
    for (let job = this.jobs[0]; job; job = this.jobs[0]) {
      // Synchronous when nothing holds the write: a job leaves the queue as soon as it starts.
      if (!this.mayWrite(job.queuedAt)) await this.until(job.queuedAt);
      this.jobs.shift();
      await job.run();
    }
    if (this.dropped > 0) this.log.warn({ dropped: this.dropped }, "Events dropped while the queue was full");
    this.dropped = 0;
    this.running = undefined;
  }

  /**
   * True when the Event queued at `queuedAt` may be written now. A backlog of half the bound is
   * written without waiting: held at up to 10 s each, a long burst's Events would otherwise fill
   * the queue and be dropped.
   */
  private mayWrite(queuedAt: number): boolean {
    if (!this.holdWhile || this.flushing > 0 || this.jobs.length >= this.max / 2) return true;
    const now = performance.now();
    if (this.holdWhile()) this.lastBusyAt = now;
    return now - this.lastBusyAt >= this.quietMs || now - queuedAt >= this.maxDelayMs;
  }

  /** Resolves once the Event queued at `queuedAt` may be written. */
  private async until(queuedAt: number): Promise<void> {
    do await new Promise((resolve) => setTimeout(resolve, this.pollMs));
    while (!this.mayWrite(queuedAt));
  }
}

interface Seen {
  name: string;
  namespace: string;
  count: number;
  at: number;
}

/** The API-backed recorder for one component (e.g. `kubeplug/webapp`). */
export class ApiEventRecorder implements EventRecorder {
  private readonly client: Client;
  private readonly component: string;
  private readonly log: Logger;
  private readonly host: string;
  private readonly seen = new Map<string, Seen>();
  private readonly queue: EventQueue;

  /**
   * `host` (default $HOSTNAME) names the reporting instance; `queue` is shared by the manager's
   * recorders, and a recorder made without one gets its own.
   */
  constructor(client: Client, component: string, log: Logger, options: { host?: string; queue?: EventQueue } = {}) {
    this.client = client;
    this.component = component;
    this.log = log;
    this.host = options.host ?? process.env.HOSTNAME ?? "";
    this.queue = options.queue ?? new EventQueue(log);
  }

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    // The time of the event, not of its write (which may wait behind others).
    const now = new Date();
    this.queue.push(() =>
      this.write(obj, type, reason, message, now).catch((err: unknown) =>
        this.log.warn({ err: String(err), reason }, "could not record event"),
      ),
    );
  }

  flush(): Promise<void> {
    return this.queue.flush();
  }

  private async write(obj: KubeObject, type: EventType, reason: string, message: string, now: Date): Promise<void> {
    const { metadata } = obj;
    // Events live in the object's namespace; cluster-scoped objects' events go to "default".
    const namespace = metadata.namespace || "default";
    const key = `${metadata.uid}|${type}|${reason}|${message}`;
    const previous = this.seen.get(key);
    if (previous && now.getTime() - previous.at < AGGREGATE_WINDOW_MS) {
      previous.count++;
      previous.at = now.getTime();
      try {
        await this.client.patch(EventKind, previous.name, previous.namespace, {
          count: previous.count,
          lastTimestamp: now.toISOString(),
        });
        return;
      } catch (err) {
        if (!isNotFound(err)) throw err;
      }
    }
    const name = `${metadata.name}.${now.getTime().toString(16)}${randomBytes(2).toString("hex")}`;
    await this.client.create(EventKind, {
      metadata: { name, namespace },
      involvedObject: {
        apiVersion: obj.apiVersion,
        kind: obj.kind,
        name: metadata.name,
        namespace: metadata.namespace,
        uid: metadata.uid,
        resourceVersion: metadata.resourceVersion,
      },
      type,
      reason,
      message,
      count: 1,
      firstTimestamp: now.toISOString(),
      lastTimestamp: now.toISOString(),
      source: { component: this.component, ...(this.host ? { host: this.host } : {}) },
      reportingComponent: this.component,
      reportingInstance: this.host || this.component,
    });
    this.seen.set(key, { name, namespace, count: 1, at: now.getTime() });
    if (this.seen.size > 4096) this.prune(now.getTime());
  }

  private prune(now: number): void {
    for (const [key, s] of this.seen) if (now - s.at > AGGREGATE_WINDOW_MS) this.seen.delete(key);
  }
}

/**
 * Kubernetes Events about objects (`kubectl describe` shows them), after client-go's recorder.
 *
 * Guarantees: recording never throws and never blocks the caller (the write happens in the
 * background; failures are logged). Writes go out one at a time, in order, through an
 * {@link EventQueue} the manager's recorders share (client-go's broadcaster writes the same way), so
 * a burst of reconciles never sends a burst of Event POSTs competing with the reconciles' own
 * writes; past 1,000 queued Events new ones are dropped, logged and counted in
 * `kubeplug_events_dropped_total` (client-go drops past 1,000 too).
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
  /** Resolves when every pending write has finished (tests, shutdown). */
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
}

/** Event writes waiting their turn: one at a time, in order, at most `max` waiting. */
export class EventQueue {
  private readonly jobs: (() => Promise<void>)[] = [];
  private running: Promise<void> | undefined;
  private dropped = 0;
  private readonly log: Logger;
  private readonly max: number;
  private readonly onDropped: (() => void) | undefined;

  constructor(log: Logger, options: EventQueueOptions = {}) {
    this.log = log;
    this.max = options.max ?? MAX_QUEUED_EVENTS;
    this.onDropped = options.onDropped;
  }

  /** Queues `job` (which must not reject); false when the queue is full and it was dropped. */
  push(job: () => Promise<void>): boolean {
    if (this.jobs.length >= this.max) {
      if (this.dropped++ === 0) this.log.warn({ queued: this.max }, "too many Events waiting to be written: dropping new ones");
      this.onDropped?.();
      return false;
    }
    this.jobs.push(job);
    this.running ??= this.drain();
    return true;
  }

  /** Resolves when every queued write has finished. */
  async flush(): Promise<void> {
    while (this.running) await this.running;
  }

  private async drain(): Promise<void> {
    for (let job = this.jobs.shift(); job; job = this.jobs.shift()) await job();
    if (this.dropped > 0) this.log.warn({ dropped: this.dropped }, "Events dropped while the queue was full");
    this.dropped = 0;
    this.running = undefined;
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

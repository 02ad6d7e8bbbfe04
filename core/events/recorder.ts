/**
 * Kubernetes Events about objects (`kubectl describe` shows them), after client-go's recorder.
 *
 * Guarantees: recording never throws and never blocks the caller (the write happens in the
 * background; failures are logged). A repeat of the same type/reason/message for the same object
 * within 10 minutes increments `count` and `lastTimestamp` of the existing Event instead of creating a
 * new one (client-go's EventCorrelator aggregation).
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
  private readonly pending = new Set<Promise<void>>();

  constructor(client: Client, component: string, log: Logger, host = process.env.HOSTNAME ?? "") {
    this.client = client;
    this.component = component;
    this.log = log;
    this.host = host;
  }

  event(obj: KubeObject, type: EventType, reason: string, message: string): void {
    const p = this.write(obj, type, reason, message)
      .catch((err: unknown) => this.log.warn({ err: String(err), reason }, "could not record event"))
      .finally(() => this.pending.delete(p));
    this.pending.add(p);
  }

  async flush(): Promise<void> {
    while (this.pending.size > 0) await Promise.all(this.pending);
  }

  private async write(obj: KubeObject, type: EventType, reason: string, message: string): Promise<void> {
    const { metadata } = obj;
    // Events live in the object's namespace; cluster-scoped objects' events go to "default".
    const namespace = metadata.namespace || "default";
    const key = `${metadata.uid}|${type}|${reason}|${message}`;
    const now = new Date();
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

/**
 * A controller: watch sources feed a work queue of `namespace/name` keys; workers run the reconcile
 * function for each key (controller-runtime's internal `controller.go`).
 *
 * Guarantees: one key is never reconciled by two workers at once; a key that changes while being
 * reconciled runs again afterwards; a throw is retried with per-key exponential backoff (5 ms doubling
 * to 1000 s) under an overall 10 qps/100 burst bucket; a TerminalError is not retried; a throw never
 * kills a worker. On stop, no new key is started and in-flight reconciles are awaited.
 */
import { randomUUID } from "node:crypto";
import type { SharedCache } from "../cache/shared-cache.ts";
import { isConflict } from "../client/rest.ts";
import type { Kind } from "../kinds.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { type KubeObject, type ObjectKey, objectKey, splitKey } from "../object.ts";
import type { MapFn, Source } from "./builder.ts";
import { admits } from "./predicates.ts";
import type { RateLimiter } from "./ratelimiter.ts";
import { type ReconcileResult, TerminalError } from "./result.ts";
import { WorkQueue } from "./workqueue.ts";

/** What to reconcile: the object's name and (for namespaced kinds) namespace. */
export type Request = ObjectKey;

/** What the controller gives a key-based reconcile; the object reconciler (reconcile-context.ts) builds on it. */
export interface RequestContext {
  /** Logger with controller, namespace, name and reconcileID. */
  readonly log: Logger;
  /** Aborted when the manager stops: pass it to long waits. */
  readonly signal: AbortSignal;
  readonly controller: string;
  readonly reconcileID: string;
}

/** A key-based reconcile: one request in, an Action (or nothing) out; throw to retry with backoff. */
export type RequestReconciler = (request: Request, ctx: RequestContext) => Promise<ReconcileResult>;

/** Dependencies and settings of a controller. */
export interface ControllerOptions {
  name: string;
  /** The kind reconciled (the `for` kind): owned children map to owners of this kind. */
  kind: Kind;
  sources: readonly Source[];
  reconcile: RequestReconciler;
  cache: SharedCache;
  metrics: Metrics;
  logger: Logger;
  maxConcurrentReconciles: number;
  rateLimiter?: RateLimiter<string>;
}

function requestKey(r: ObjectKey): string {
  return r.namespace ? `${r.namespace}/${r.name}` : r.name;
}

/** See the module comment. Built by the manager's `controller()` builder. */
export class Controller {
  readonly name: string;
  readonly needsLeaderElection = true;
  private readonly options: ControllerOptions;
  private readonly log: Logger;
  private queue: WorkQueue | undefined;
  /** True while the workers run (after the caches synced). */
  private working = false;
  /** Keys enqueued while no queue runs (before start, or on a replica that is not the leader). */
  private readonly pending = new Set<string>();

  constructor(options: ControllerOptions) {
    this.options = options;
    this.name = options.name;
    this.log = options.logger.child({ controller: options.name });
    // Every series at zero from the start (controller-runtime's initMetrics), so dashboards and
    // rate() see a controller before its first reconcile, and on replicas that are not the leader.
    const { metrics } = options;
    const labels = { controller: options.name };
    for (const result of ["success", "error", "requeue", "requeue_after"]) metrics.reconcileTotal.inc({ ...labels, result }, 0);
    metrics.reconcileErrors.inc(labels, 0);
    metrics.terminalReconcileErrors.inc(labels, 0);
    metrics.reconcilePanics.inc(labels, 0);
    metrics.activeWorkers.set(labels, 0);
    metrics.maxConcurrentReconciles.set(labels, options.maxConcurrentReconciles);
  }

  /**
   * True while this controller's workers run and a reconcile is queued or running (see
   * WorkQueue.busy); keys queued before its caches synced do not count.
   */
  get busy(): boolean {
    return this.working && (this.queue?.busy() ?? false);
  }

  /** Adds a key directly (plugins reacting to something outside the cluster, tests). */
  enqueue(request: Request): void {
    const key = requestKey(request);
    if (this.queue) this.queue.add(key);
    else this.pending.add(key);
  }

  /** Runs until `signal` aborts, then finishes in-flight reconciles and resolves. */
  async start(signal: AbortSignal): Promise<void> {
    const { metrics, cache, sources } = this.options;
    const queue = new WorkQueue({
      metrics: metrics.workQueue(this.name),
      ...(this.options.rateLimiter ? { rateLimiter: this.options.rateLimiter } : {}),
    });
    this.queue = queue;
    for (const key of this.pending) queue.add(key);
    this.pending.clear();
    const enqueueAll = (requests: readonly Request[] | Promise<readonly Request[]>) => {
      if (!Array.isArray(requests)) {
        (requests as Promise<readonly Request[]>).then(enqueueAll, (err: unknown) =>
          this.log.error({ err: String(err) }, "a watch map failed; its event is dropped"),
        );
        return;
      }
      for (const r of requests as readonly Request[]) queue.add(requestKey(r));
    };
    const removers = sources.map((source) => {
      const informer = cache.informer(source.kind);
      const { predicates } = source;
      const map: MapFn = source.map ?? (source.role === "for" ? mapToSelf : mapToControllerOwner(this.options.kind));
      return informer.addHandler({
        onAdd: (obj) => {
          if (predicates.every((p) => admits(p, "create", obj))) enqueueAll(map(obj));
        },
        onUpdate: (old, obj) => {
          if (!predicates.every((p) => admits(p, "update", old, obj))) return;
          const requests = map(obj);
          // Both versions' requests, merged into one set as controller-runtime does: what the old
          // version mapped to (an owner reference or a label that moved) must wake too. The default
          // maps read only the owner references (and the object's own name), so they need the old
          // version only when those moved. (Adds of one key within a turn coalesce in the queue.)
          if (!source.map && (source.role === "for" || sameOwners(old, obj))) {
            enqueueAll(requests);
            return;
          }
          const before = map(old);
          if (Array.isArray(requests) && Array.isArray(before)) enqueueAll(uniqueRequests(requests, before));
          else enqueueAll(Promise.all([requests, before]).then(([a, b]) => uniqueRequests(a, b)));
        },
        onDelete: (obj) => {
          if (predicates.every((p) => admits(p, "delete", obj))) enqueueAll(map(obj));
        },
      });
    });
    const workers = this.options.maxConcurrentReconciles;
    metrics.maxConcurrentReconciles.set({ controller: this.name }, workers);
    metrics.activeWorkers.set({ controller: this.name }, 0);
    let stopping = false;
    const onAbort = () => {
      stopping = true;
      queue.shutDown();
    };
    signal.addEventListener("abort", onAbort, { once: true });
    try {
      await Promise.all(sources.map((s) => cache.informer(s.kind).waitForSync(signal)));
      if (signal.aborted) return;
      this.log.info({ workers }, "starting workers");
      this.working = true;
      const loops = Array.from({ length: workers }, async () => {
        for (;;) {
          const key = await queue.get();
          if (key === undefined) return;
          if (stopping) {
            queue.done(key);
            continue;
          }
          await this.process(queue, key, signal);
        }
      });
      await Promise.all(loops);
      await queue.shutDownWithDrain();
    } finally {
      this.working = false;
      this.queue = undefined;
      signal.removeEventListener("abort", onAbort);
      for (const remove of removers) remove();
      this.log.info("stopped");
    }
  }

  private async process(queue: WorkQueue, key: string, signal: AbortSignal): Promise<void> {
    const { metrics, reconcile } = this.options;
    const labels = { controller: this.name };
    const request = splitKey(key);
    const reconcileID = randomUUID();
    const log = this.log.child({
      ...(request.namespace ? { namespace: request.namespace } : {}),
      name: request.name,
      reconcileID,
    });
    metrics.activeWorkers.inc(labels);
    const started = performance.now();
    try {
      const result = await reconcile(request, { log, signal, controller: this.name, reconcileID });
      queue.forget(key);
      if (result?.type === "requeueAfter") {
        queue.addAfter(key, result.ms);
        metrics.reconcileTotal.inc({ ...labels, result: "requeue_after" });
      } else {
        metrics.reconcileTotal.inc({ ...labels, result: "success" });
      }
    } catch (err) {
      if (isConflict(err)) {
        // A write lost a race with another writer (the object changed under the reconcile): the
        // next run starts from the newer copy. A rate-limited requeue, not an error (no error log,
        // no error count), as kubebuilder's controllers return Requeue on a Conflict.
        queue.addRateLimited(key);
        metrics.reconcileTotal.inc({ ...labels, result: "requeue" });
        log.debug({ err: (err as Error).message }, "a write lost a race (Conflict); requeued");
        return;
      }
      metrics.reconcileErrors.inc(labels);
      metrics.reconcileTotal.inc({ ...labels, result: "error" });
      if (err instanceof TerminalError) {
        queue.forget(key);
        metrics.terminalReconcileErrors.inc(labels);
        log.error({ err: err.message }, "reconcile failed with a terminal error; not retrying");
      } else {
        if (!(err instanceof Error)) metrics.reconcilePanics.inc(labels);
        queue.addRateLimited(key);
        log.error(
          { err: err instanceof Error ? err.message : String(err), retries: queue.numRequeues(key) },
          "reconcile failed; retrying with backoff",
        );
      }
    } finally {
      metrics.reconcileTime.observe(labels, (performance.now() - started) / 1000);
      metrics.activeWorkers.dec(labels);
      queue.done(key);
    }
  }
}

/** Maps an object to itself (the `for` kind's source). */
export const mapToSelf: MapFn = (obj) => [splitKey(objectKey(obj))];

/** Maps a child to its controller owner when the owner is of `owner` kind (the `owns` sources). */
export function mapToControllerOwner(owner: Kind): MapFn {
  return (obj) => {
    const ref = obj.metadata.ownerReferences?.find((r) => r.controller);
    if (!ref || ref.kind !== owner.kind) return [];
    const group = ref.apiVersion.includes("/") ? ref.apiVersion.slice(0, ref.apiVersion.indexOf("/")) : "";
    if (group !== owner.group) return [];
    return [
      owner.namespaced && obj.metadata.namespace ? { namespace: obj.metadata.namespace, name: ref.name } : { name: ref.name },
    ];
  };
}

/** True when both versions of an object have the same owner references (compared by content). */
function sameOwners(a: KubeObject, b: KubeObject): boolean {
  const [x, y] = [a.metadata.ownerReferences ?? [], b.metadata.ownerReferences ?? []];
  if (x === y) return true;
  if (x.length !== y.length) return false;
  return x.every((ref, i) => {
    const other = y[i];
    return (
      other !== undefined &&
      ref.uid === other.uid &&
      ref.name === other.name &&
      ref.kind === other.kind &&
      ref.apiVersion === other.apiVersion &&
      !!ref.controller === !!other.controller
    );
  });
}

/** The requests of both lists, each key once. */
function uniqueRequests(a: readonly Request[], b: readonly Request[]): Request[] {
  return [...new Map([...a, ...b].map((r) => [requestKey(r), r])).values()];
}

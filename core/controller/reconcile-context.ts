/**
 * What a reconcile function gets besides its object, and the adapter that turns an object
 * reconciler (plus an optional finalizer) into the key-based reconcile a {@link Controller} runs.
 *
 * Guarantees:
 * - The reconcile function is called with the object as cached, and not at all when it is gone
 *   (its owned children are garbage-collected), as controller-runtime's object reconcilers and
 *   kube-rs's `Arc<K>` do.
 * - `own()` makes at most one write per child (none when it is in place) and always sets the
 *   controller reference to the reconciled object. A child the cache still shows as it was before
 *   this controller's last update of it is compared with that update instead (see `OwnWrites`).
 *   A reconcile that created or updated children records one Event about them on the object
 *   (`Created`, `Updated`, or `Reconciled` for both), not one per child: one Event write per change
 *   instead of one per child.
 * - `status()` writes the status subresource only when it changed, retrying on conflicts.
 * - A reconcile that throws records a `Warning` `ReconcileError` Event on the object (not for a
 *   Conflict, a lost race the controller requeues quietly), then is retried
 *   with backoff (a TerminalError is not retried).
 */
import type { Client } from "../client/client.ts";
import { isConflict } from "../client/rest.ts";
import type { EventRecorder, EventType } from "../events/recorder.ts";
import { createOrUpdate, OwnWrites } from "../helpers/create-or-update.ts";
import { finalizer } from "../helpers/finalizer.ts";
import { setControllerReference } from "../helpers/owner.ts";
import { writeStatus } from "../helpers/status.ts";
import type { Kind } from "../kinds.ts";
import type { Logger } from "../logger.ts";
import type { KubeObject, Named, ObjectKey } from "../object.ts";
import type { ControllerSpec } from "./builder.ts";
import type { RequestContext, RequestReconciler } from "./controller.ts";

/** The status type of an object type. */
export type StatusOf<T> = T extends { status?: infer S } ? NonNullable<S> : never;

/** Everything a reconcile needs besides its object. */
export interface ReconcileContext<T extends KubeObject> {
  /** Cached reads (no API request), API writes; `client.reader` reads uncached. */
  readonly client: Client;
  /** Logger with controller, namespace, name and reconcileID. */
  readonly log: Logger;
  /** Aborted when the manager stops or loses the lease: pass it to long waits. */
  readonly signal: AbortSignal;
  readonly controller: string;
  readonly reconcileID: string;
  /**
   * Creates or updates a child owned by the reconciled object: `mutate` gets the live child (a private
   * copy) or a new one with only name and namespace, and sets the fields this controller owns. A
   * string key puts a namespaced child in the owner's namespace. Returns the child as stored.
   */
  own<C extends KubeObject, N extends boolean>(
    kind: Kind<C, N>,
    key: string | ObjectKey,
    mutate: (child: Named<C, N>) => void,
  ): Promise<Named<C, N>>;
  /** Writes the status when it differs; a function is re-run on the fresh object after a conflict. */
  status(status: StatusOf<T> | ((current: T) => StatusOf<T>)): Promise<T>;
  /** Records an Event about the reconciled object (`kubectl describe` shows it). */
  event(type: EventType, reason: string, message: string): void;
}

/** What the adapter needs from the manager. */
export interface ObjectReconcilerDeps {
  client: Client;
  recorder: EventRecorder;
}

const messageOf = (err: unknown) => (err instanceof Error ? err.message : String(err));

/** The children one reconcile created or updated, as `Kind namespace/name`, by verb. */
type Changes = { Created: string[]; Updated: string[] };

/** Records one Event for what a reconcile changed (nothing when it changed nothing). */
function recordChanges(recorder: EventRecorder, obj: KubeObject, changes: Changes): void {
  const parts = (["Created", "Updated"] as const).filter((verb) => changes[verb].length > 0);
  if (parts.length === 0) return;
  const reason = parts.length === 2 ? "Reconciled" : (parts[0] as string);
  recorder.event(obj, "Normal", reason, parts.map((verb) => `${verb} ${changes[verb].join(", ")}`).join("; "));
}

function contextFor<T extends KubeObject>(
  kind: Kind,
  obj: T,
  base: RequestContext,
  deps: ObjectReconcilerDeps,
  changes: Changes,
  writes: OwnWrites,
): ReconcileContext<T> {
  const { client, recorder } = deps;
  const event = (type: EventType, reason: string, message: string) => recorder.event(obj, type, reason, message);
  return {
    ...base,
    client,
    event,
    async own(childKind, key, mutate) {
      const name = typeof key === "string" ? key : key.name;
      const namespace = !childKind.namespaced
        ? undefined
        : typeof key === "string" || key.namespace === undefined
          ? obj.metadata.namespace
          : key.namespace;
      if (childKind.namespaced && !namespace) {
        throw new Error(`own(${childKind.kind} "${name}"): a cluster-scoped owner must name the child's namespace`);
      }
      const { result, object } = await createOrUpdate(
        client,
        childKind,
        { name, namespace },
        (child) => {
          mutate(child);
          child.metadata.ownerReferences = setControllerReference(obj, kind, child).metadata.ownerReferences;
        },
        { writes },
      );
      if (result !== "unchanged") {
        changes[result === "created" ? "Created" : "Updated"].push(
          `${childKind.kind} ${namespace ? `${namespace}/` : ""}${name}`,
        );
      }
      return object;
    },
    async status(status) {
      type WithStatus = Named<KubeObject & { status?: unknown }>;
      const compute = (typeof status === "function" ? status : () => status) as unknown as (
        current: WithStatus,
      ) => NonNullable<unknown>;
      const written = await writeStatus(client, kind as Kind<WithStatus>, obj as WithStatus, compute);
      return written.object as unknown as T;
    },
  };
}

/** The key-based reconcile of a controller built from `spec`; see the module comment. */
export function objectReconciler(spec: ControllerSpec, deps: ObjectReconcilerDeps): RequestReconciler {
  const { kind, reconcile } = spec;
  // Per controller: its reconciles of one object run one at a time, and only they write its children.
  const writes = new OwnWrites();
  return async (request, base) => {
    const obj = await deps.client.get(kind, request.name, request.namespace);
    if (!obj) return undefined;
    const changes: Changes = { Created: [], Updated: [] };
    try {
      const fin = spec.finalizer;
      if (!fin) return await reconcile(obj, contextFor(kind, obj, base, deps, changes, writes));
      return await finalizer(deps.client, kind, fin.name, obj, (event) =>
        (event.type === "apply" ? reconcile : fin.cleanup)(event.obj, contextFor(kind, event.obj, base, deps, changes, writes)),
      );
    } catch (err) {
      // A Conflict is a lost race the controller requeues, not an error worth a Warning.
      if (!isConflict(err)) deps.recorder.event(obj, "Warning", "ReconcileError", messageOf(err).slice(0, 1000));
      throw err;
    } finally {
      // Also after a failure: what was created before it happened.
      recordChanges(deps.recorder, obj, changes);
    }
  };
}

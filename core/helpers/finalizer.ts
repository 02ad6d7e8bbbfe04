/**
 * kube-rs's `finalizer()` helper: turns "add the finalizer, reconcile, on deletion clean up, then
 * remove the finalizer" into two events for the reconciler, `apply` and `cleanup`.
 *
 * | object                  | has the finalizer  | lacks it                                         |
 * |-------------------------|--------------------|--------------------------------------------------|
 * | not being deleted       | `apply`            | add it, then `apply` on the patched object       |
 * | being deleted           | `cleanup`, remove  | nothing: `awaitChange()`                         |
 *
 * Guarantees:
 * - `apply` runs only while the finalizer is on the object, so every object `apply` has touched gets
 *   a `cleanup` before it disappears.
 * - The finalizer is removed only after `cleanup` resolves; a throwing `cleanup` keeps it (and the
 *   object), and the error propagates, so the reconcile is retried with backoff.
 * - Another controller's finalizer is never removed or duplicated: both patches are JSON Patches
 *   that begin with a `test` operation. Adding tests the whole finalizer list as read (null when the
 *   object has none); removing tests that the index still holds this name.
 *   When a test fails the API answers 422, which is thrown, and the next reconcile sees fresh state.
 * - After adding the finalizer it runs `apply` on the object the patch returned (kube-rs returns
 *   `awaitChange()` and waits for the patch's watch event, which a generation predicate would drop).
 *
 * Assumptions:
 * - `obj` is the current view of the object (from the cache is fine); a stale view only makes a
 *   patch fail its test, never remove the wrong entry.
 * - `name` is a finalizer name of the form `domain/name` (e.g. `webapp.example.com/cleanup`); the
 *   API server warns about names without a domain.
 * - `cleanup` is idempotent: it can run again when the removal patch fails, when the process dies
 *   between cleanup and removal, or when a reconcile runs on a view older than the removal.
 *
 * Caveats:
 * - Deviation from kube-rs: a `cleanup` that returns `Action.requeueAfter(ms)` means "not finished"
 *   (e.g. waiting for an external resource to go away): the finalizer stays and the requeue is
 *   returned. kube-rs removes the finalizer whenever cleanup returns Ok. Return `awaitChange()` (or
 *   nothing) when cleanup is done.
 * - A 404 while removing the finalizer means the object is already gone; that counts as success.
 * - Finalizers cannot be added to an object that is being deleted: an object deleted before its
 *   first reconcile never gets `apply` nor `cleanup`.
 */
import type { Client } from "../client/client.ts";
import { isNotFound, PatchType } from "../client/rest.ts";
import type { ReconcileResult } from "../controller/result.ts";
import { Action } from "../controller/result.ts";
import type { Kind } from "../kinds.ts";
import type { KubeObject } from "../object.ts";

/** What the finalizer helper asks the reconciler to do. */
export interface FinalizerEvent<T> {
  /** `apply`: reconcile towards the desired state. `cleanup`: the object is being deleted; release what it holds. */
  type: "apply" | "cleanup";
  obj: T;
}

/** Runs `handler` for `apply` or `cleanup` and manages the finalizer `name` around it; see the module comment. */
export async function finalizer<T extends KubeObject>(
  client: Client,
  kind: Kind<T>,
  name: string,
  obj: T,
  handler: (event: FinalizerEvent<T>) => Promise<ReconcileResult>,
): Promise<ReconcileResult> {
  if (!name) throw new Error("finalizer: the finalizer name is empty");
  const { name: objName, namespace } = obj.metadata;
  if (!objName) throw new Error(`finalizer: the ${kind.kind} has no metadata.name`);
  const finalizers = obj.metadata.finalizers ?? [];
  const index = finalizers.indexOf(name);
  const deleting = Boolean(obj.metadata.deletionTimestamp);

  if (!deleting && index >= 0) return handler({ type: "apply", obj });
  if (deleting && index < 0) return Action.awaitChange();

  if (!deleting) {
    const patch =
      finalizers.length > 0
        ? [
            // The API server does not deduplicate finalizers: fail if anyone changed the list since it was read.
            { op: "test", path: "/metadata/finalizers", value: finalizers },
            { op: "add", path: "/metadata/finalizers/-", value: name },
          ]
        : [
            // kube-rs's form: an absent list tests equal to null, so only a concurrent finalizer change fails it.
            { op: "test", path: "/metadata/finalizers", value: null },
            { op: "add", path: "/metadata/finalizers", value: [name] },
          ];
    // Go on with the patched object rather than waiting for the patch's own watch event (kube-rs
    // returns awaitChange here): a generation-changed predicate filters that event out, since adding
    // a finalizer does not change the generation, and it saves a round trip anyway.
    const patched = await client.patch(kind, objName, namespace, patch, PatchType.json);
    return handler({ type: "apply", obj: patched });
  }

  const result = await handler({ type: "cleanup", obj });
  if (result?.type === "requeueAfter") return result;
  const path = `/metadata/finalizers/${index}`;
  try {
    // The test makes the removal fail, rather than drop another controller's entry, when the list shifted.
    await client.patch(
      kind,
      objName,
      namespace,
      [
        { op: "test", path, value: name },
        { op: "remove", path },
      ],
      PatchType.json,
    );
  } catch (err) {
    if (!isNotFound(err)) throw err;
  }
  return result;
}

/**
 * Controller owner references, after controller-runtime's `controllerutil.SetControllerReference`.
 *
 * Guarantees: the child passed in is never changed (it may be a frozen object from the cache); a
 * child has at most one controller reference; a reference to the same owner (same API group, kind
 * and name, whatever the version or uid) is replaced rather than duplicated, so calling this on
 * every reconcile is idempotent.
 * Assumptions: the owner was read from the API server (it has a name and a uid).
 * Caveats: the garbage collector deletes a child whose controller is gone only when the owner
 * reference's uid matches; a namespaced owner cannot own a cluster-scoped child or a child in
 * another namespace (the API server accepts such references, the garbage collector then deletes
 * the child at once), so both are rejected here.
 */
import { apiVersionOf, type Kind } from "../kinds.ts";
import type { KubeObject, OwnerReference } from "../object.ts";

/** The child already has a controller owner other than the one being set (controller-runtime's AlreadyOwnedError). */
export class AlreadyOwnedError extends Error {
  override name = "AlreadyOwnedError";
  /** The controller reference the child already carries. */
  readonly existing: OwnerReference;
  constructor(child: KubeObject, existing: OwnerReference, wanted: OwnerReference) {
    super(
      `${describe(child.kind, child.metadata)} is already controlled by ${existing.kind} "${existing.name}" (uid ${existing.uid}); ` +
        `cannot make ${wanted.kind} "${wanted.name}" its controller too`,
    );
    this.existing = existing;
  }
}

function describe(kind: string | undefined, meta: { namespace?: string; name?: string; generateName?: string }): string {
  const name = meta.name ?? (meta.generateName ? `${meta.generateName}*` : "<unnamed>");
  return `${kind ?? "object"} "${meta.namespace ? `${meta.namespace}/` : ""}${name}"`;
}

/** The API group of an `apiVersion` (`apps/v1` -> `apps`, `v1` -> ""). */
function groupOf(apiVersion: string): string {
  const slash = apiVersion.indexOf("/");
  return slash < 0 ? "" : apiVersion.slice(0, slash);
}

/** True when both references name the same object: same group, kind and name (as controller-runtime's referSameObject). */
function sameObject(a: OwnerReference, b: OwnerReference): boolean {
  return groupOf(a.apiVersion) === groupOf(b.apiVersion) && a.kind === b.kind && a.name === b.name;
}

/** A controller owner reference to `owner` (controller and blockOwnerDeletion set). */
export function controllerReference(owner: KubeObject, kind: Kind): OwnerReference {
  const { name, uid } = owner.metadata;
  if (!name) throw new Error(`cannot reference a ${kind.kind} as owner: its metadata.name is empty`);
  if (!uid)
    throw new Error(
      `cannot reference ${kind.kind} "${name}" as owner: metadata.uid is empty (read the owner from the API first)`,
    );
  return { apiVersion: apiVersionOf(kind), kind: kind.kind, name, uid, controller: true, blockOwnerDeletion: true };
}

/**
 * A copy of `child` whose controller owner is `owner`. Throws {@link AlreadyOwnedError} when another
 * object is already its controller, and an Error when a namespaced owner would own a cluster-scoped
 * child or one in another namespace.
 */
export function setControllerReference<C extends KubeObject>(owner: KubeObject, kind: Kind, child: C): C {
  const ref = controllerReference(owner, kind);
  const ownerNamespace = owner.metadata.namespace;
  const childNamespace = child.metadata.namespace;
  if (kind.namespaced && !ownerNamespace) {
    throw new Error(`${describe(kind.kind, owner.metadata)} is of a namespaced kind but has no metadata.namespace`);
  }
  if (ownerNamespace) {
    const ownerName = describe(kind.kind, owner.metadata);
    if (!childNamespace) {
      throw new Error(
        `${describe(child.kind, child.metadata)} is cluster-scoped (no metadata.namespace) and cannot be owned by namespaced ${ownerName}`,
      );
    }
    if (childNamespace !== ownerNamespace) {
      throw new Error(
        `${describe(child.kind, child.metadata)} cannot be owned by ${ownerName}: cross-namespace owner references are not allowed`,
      );
    }
  }
  const refs = child.metadata.ownerReferences ?? [];
  const existing = refs.find((r) => r.controller === true);
  if (existing && !sameObject(existing, ref)) throw new AlreadyOwnedError(child, existing, ref);
  const index = refs.findIndex((r) => sameObject(r, ref));
  const ownerReferences = index < 0 ? [...refs, ref] : refs.map((r, i) => (i === index ? ref : r));
  return { ...child, metadata: { ...child.metadata, ownerReferences } };
}

/** True when `child`'s controller owner reference points at `owner` (compared by uid, as apimachinery's IsControlledBy). */
export function isControlledBy(child: KubeObject, owner: KubeObject): boolean {
  const uid = owner.metadata.uid;
  if (!uid) return false;
  return (child.metadata.ownerReferences ?? []).some((r) => r.controller === true && r.uid === uid);
}

/**
 * Kinds: what the runtime needs to know to reach a type of object on the API server.
 * core/ knows no plugin kind by name; plugins define theirs with `defineKind` (crd.ts) and use the
 * built-in Kubernetes kinds declared in builtin-kinds.ts.
 */
import type { KubeObject, Named } from "./object.ts";

/** A kind on the API server: enough to build its URLs and name it in logs and metrics. */
export interface Kind<T extends KubeObject = KubeObject, N extends boolean = boolean> {
  /** API group; "" for the core group. */
  readonly group: string;
  readonly version: string;
  readonly kind: string;
  /** Lower-case plural resource name used in URLs, e.g. "deployments". */
  readonly plural: string;
  readonly namespaced: N;
  /** Set on the handle `ctx.cache(kind, { metadataOnly: true })` returns: its objects carry only metadata. */
  readonly metadataOnly?: true;
  /** Phantom field carrying the object type; never set at run time. */
  readonly __type?: T;
}

/** The handle of a kind cached metadata only: same resource, objects typed as metadata only. */
export function metadataOnlyKind<N extends boolean>(kind: Kind<KubeObject, N>): Kind<KubeObject, N> {
  const { group, version, kind: name, plural, namespaced } = kind;
  return { group, version, kind: name, plural, namespaced, metadataOnly: true };
}

/** The object type of a kind, as stored (named; namespaced when the kind is). */
export type ObjectOf<K> = K extends Kind<infer T, infer N> ? Named<T, N> : never;

/** `group/version`, or `version` for the core group. */
export function apiVersionOf(kind: Kind): string {
  return kind.group ? `${kind.group}/${kind.version}` : kind.version;
}

/** `plural.group` (e.g. `deployments.apps`), the name RBAC and CRDs use; `plural` in the core group. */
export function resourceName(kind: Kind): string {
  return kind.group ? `${kind.plural}.${kind.group}` : kind.plural;
}

/** A stable id for a kind (`apps/v1/Deployment`), used as the key of the shared cache. */
export function kindId(kind: Kind): string {
  return `${apiVersionOf(kind)}/${kind.kind}`;
}

/** The collection URL of a kind, in one namespace or across all. */
export function collectionPath(kind: Kind, namespace?: string): string {
  const base = kind.group ? `/apis/${kind.group}/${kind.version}` : `/api/${kind.version}`;
  return kind.namespaced && namespace
    ? `${base}/namespaces/${encodeURIComponent(namespace)}/${kind.plural}`
    : `${base}/${kind.plural}`;
}

/** The URL of one object, optionally of a subresource such as `status`. */
export function objectPath(kind: Kind, name: string, namespace?: string, subresource?: string): string {
  if (kind.namespaced && !namespace) throw new Error(`${kind.kind} is namespaced: a namespace is required for "${name}"`);
  const path = `${collectionPath(kind, namespace)}/${encodeURIComponent(name)}`;
  return subresource ? `${path}/${subresource}` : path;
}

/** Declares a kind served by the API server (built-in or from a CRD installed elsewhere). */
export function kindOf<T extends KubeObject, const N extends boolean = boolean>(spec: {
  group: string;
  version: string;
  kind: string;
  plural: string;
  namespaced: N;
}): Kind<T, N> {
  return Object.freeze({ ...spec });
}

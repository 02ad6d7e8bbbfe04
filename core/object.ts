/**
 * Kubernetes objects as they travel on the wire (JSON): timestamps are RFC 3339 strings, not Dates.
 * client-node's generated model types declare Dates because its own client converts them; kubeplug
 * reads raw JSON, so `Wire<T>` turns those Dates back into strings.
 */
import type { V1ObjectMeta, V1OwnerReference } from "@kubernetes/client-node";

/** `T` with every `Date` replaced by the string the API server actually sends. */
export type Wire<T> = T extends Date
  ? string
  : T extends (infer U)[]
    ? Wire<U>[]
    : T extends object
      ? { [K in keyof T]: Wire<T[K]> }
      : T;

/** Object metadata as sent by the API server. */
export type ObjectMeta = Wire<V1ObjectMeta>;
/** An owner reference. */
export type OwnerReference = Wire<V1OwnerReference>;

/** Any Kubernetes object: apiVersion, kind, metadata and whatever else its kind defines. */
export interface KubeObject {
  apiVersion?: string;
  kind?: string;
  metadata: ObjectMeta;
}

/**
 * An object as the API server stores it: `metadata.name` is always set, and so is
 * `metadata.namespace` for a namespaced kind (`N` true). What the cache, the client and reconcilers
 * hand out, so plugins need no casts.
 */
export type Named<T extends KubeObject, N extends boolean = boolean> = T & {
  metadata: { name: string } & ([N] extends [true] ? { namespace: string } : unknown);
};

/** Which object to reconcile: its name and, for a namespaced kind, its namespace. */
export interface ObjectKey {
  readonly name: string;
  readonly namespace?: string | undefined;
}

/** A `namespace/name` key (just `name` for cluster-scoped objects), as client-go's MetaNamespaceKeyFunc. */
export function objectKey(obj: { metadata: { namespace?: string; name?: string } }): string {
  const { namespace, name } = obj.metadata;
  return namespace ? `${namespace}/${name}` : (name ?? "");
}

/** Splits a key made by {@link objectKey}. */
export function splitKey(key: string): { namespace?: string; name: string } {
  const slash = key.indexOf("/");
  return slash < 0 ? { name: key } : { namespace: key.slice(0, slash), name: key.slice(slash + 1) };
}

/**
 * controller-runtime's `CreateOrUpdate`: bring one object to its desired state with the fewest
 * writes. `mutate` receives a private copy of the live object (from the cache) or, when there is
 * none, a fresh one with only name and namespace, and sets the fields the caller owns. Nothing is
 * written when the result equals the live object (compared regardless of key order, status
 * ignored), so a reconcile that finds everything in place makes no request at all.
 *
 * Guarantees: at most one create and one update. A create that loses a race with the cache
 * (AlreadyExists: the object was created but the cache has not seen it yet) reads the object once
 * from the API and updates it if needed. An update on a stale copy throws Conflict, so the reconcile
 * is retried with the next cache state.
 * Assumptions: `mutate` sets fields on the object it is given instead of replacing structures the
 * API server fills in with defaults (replacing a container wholesale drops its defaulted fields and
 * makes every reconcile write).
 */
import { isDeepStrictEqual } from "node:util";
import type { Client } from "../client/client.ts";
import { isAlreadyExists } from "../client/rest.ts";
import type { Kind } from "../kinds.ts";
import type { KubeObject } from "../object.ts";

/** What {@link createOrUpdate} did. */
export type OperationResult = "created" | "updated" | "unchanged";

const withoutStatus = (obj: KubeObject) => ({ ...obj, status: undefined });

/** See the module comment. */
export async function createOrUpdate<T extends KubeObject>(
  client: Client,
  kind: Kind<T>,
  key: { name: string; namespace?: string },
  mutate: (obj: T) => void,
): Promise<{ result: OperationResult; object: T }> {
  let live = await client.get(kind, key.name, key.namespace);
  if (!live) {
    const fresh = { metadata: { name: key.name, ...(key.namespace ? { namespace: key.namespace } : {}) } } as T;
    mutate(fresh);
    try {
      return { result: "created", object: await client.create(kind, fresh) };
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      live = await client.reader.get(kind, key.name, key.namespace);
      if (!live) throw err;
    }
  }
  const copy = structuredClone(live) as T;
  mutate(copy);
  if (isDeepStrictEqual(withoutStatus(copy), withoutStatus(live))) return { result: "unchanged", object: live };
  delete (copy as { status?: unknown }).status;
  return { result: "updated", object: await client.update(kind, copy) };
}

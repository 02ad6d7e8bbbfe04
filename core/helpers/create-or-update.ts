/**
 * controller-runtime's `CreateOrUpdate`: bring one object to its desired state with the fewest
 * writes. `mutate` receives a private copy of the live object (from the cache) or, when there is
 * none, a fresh one with only name and namespace, and sets the fields the caller owns. Nothing is
 * written when the result equals the live object as JSON (key order and `undefined` members do not
 * matter, status is ignored), so a reconcile that finds everything in place makes no request at all.
 *
 * Guarantees: at most one create and one update. A create that loses a race with the cache
 * (AlreadyExists: the object was created but the cache has not seen it yet) reads the object once
 * from the API and updates it if needed. An update on a stale copy throws Conflict, so the reconcile
 * is retried with the next cache state.
 * Assumptions: `mutate` sets fields on the object it is given instead of replacing structures the
 * API server fills in with defaults (replacing a container wholesale drops its defaulted fields and
 * makes every reconcile write).
 */
import type { Client } from "../client/client.ts";
import { isAlreadyExists } from "../client/rest.ts";
import type { Kind } from "../kinds.ts";
import type { KubeObject, Named } from "../object.ts";
import { jsonEqual } from "./status.ts";

/** What {@link createOrUpdate} did. */
export type OperationResult = "created" | "updated" | "unchanged";

const withoutStatus = (obj: KubeObject) => ({ ...obj, status: undefined });

/** See the module comment. */
export async function createOrUpdate<T extends KubeObject, N extends boolean>(
  client: Client,
  kind: Kind<T, N>,
  key: { name: string; namespace?: string | undefined },
  mutate: (obj: Named<T, N>) => void,
): Promise<{ result: OperationResult; object: Named<T, N> }> {
  let live = await client.get(kind, key.name, key.namespace);
  if (!live) {
    const fresh = { metadata: { name: key.name, ...(key.namespace ? { namespace: key.namespace } : {}) } } as Named<T, N>;
    mutate(fresh);
    try {
      return { result: "created", object: await client.create(kind, fresh) };
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
      live = await client.reader.get(kind, key.name, key.namespace);
      if (!live) throw err;
    }
  }
  const copy = structuredClone(live);
  mutate(copy);
  if (jsonEqual(withoutStatus(copy), withoutStatus(live))) return { result: "unchanged", object: live };
  delete (copy as { status?: unknown }).status;
  return { result: "updated", object: await client.update(kind, copy) };
}

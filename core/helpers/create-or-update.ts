/**
 * controller-runtime's `CreateOrUpdate`: bring one object to its desired state with the fewest
 * writes. `mutate` receives a private copy of the live object (from the cache) or, when there is
 * none, a fresh one with only name and namespace, and sets the fields the caller owns. Nothing is
 * written when the result equals the live object as JSON (key order and `undefined` members do not
 * matter, status is ignored), so a reconcile that finds everything in place makes no request at all.
 *
 * Guarantees: at most one create and one accepted update. A create that loses a race with the cache
 * (AlreadyExists: the object was created but the cache has not seen it yet) reads the object once
 * from the API and updates it if needed. An update refused with Conflict (the copy was stale: on a
 * Deployment, the controller manager's status write right after someone's change is enough) reads
 * the object once from the API and tries once more, as `writeStatus` does; the cache may stay behind
 * for longer than a retry's backoff, so retrying from it would conflict again. A second Conflict is
 * thrown (a rate-limited retry of the reconcile).
 * With {@link OwnWrites}, a reconcile that runs before the cache has seen this caller's own last
 * update (another event of the object was queued meanwhile) compares with what was written, not with
 * the stale copy, so it neither writes again nor loses a Conflict: a controller fighting another
 * writer makes about one write per change of the other's.
 * Assumptions: `mutate` sets fields on the object it is given instead of replacing structures the
 * API server fills in with defaults (replacing a container wholesale drops its defaulted fields and
 * makes every reconcile write).
 */
import type { Client } from "../client/client.ts";
import { isAlreadyExists, isConflict } from "../client/rest.ts";
import { type Kind, kindId } from "../kinds.ts";
import type { KubeObject, Named } from "../object.ts";
import { jsonEqual } from "./status.ts";

/** What {@link createOrUpdate} did. */
export type OperationResult = "created" | "updated" | "unchanged";

const withoutStatus = (obj: KubeObject) => ({ ...obj, status: undefined });

/**
 * The objects a controller updated last, each with the resourceVersion its update replaced. A cached
 * copy at that version is stale for certain: the API server accepted an update on it, so the written
 * object (or something newer, which the cache will show) is current. Checking equality, never order,
 * of versions keeps them opaque, as the API conventions require.
 *
 * Guarantees: memory is bounded (`capacity` entries, the oldest dropped first); an entry is dropped
 * as soon as the cache shows another version. Dropping one only costs the write it would have saved.
 */
export class OwnWrites {
  private readonly byKey = new Map<string, { replaced: string; written: KubeObject }>();
  private readonly capacity: number;
  constructor(capacity = 1024) {
    this.capacity = capacity;
  }

  /** `live`, or what was written over it when `live` is the version that write replaced. */
  latest<T extends KubeObject>(id: string, live: T): T {
    const entry = this.byKey.get(id);
    if (!entry) return live;
    if (entry.replaced === live.metadata.resourceVersion) return entry.written as T;
    this.byKey.delete(id);
    return live;
  }

  /** Records that `written` replaced the version `replaced`. */
  record(id: string, replaced: string | undefined, written: KubeObject): void {
    this.byKey.delete(id);
    if (!replaced) return;
    this.byKey.set(id, { replaced, written });
    if (this.byKey.size > this.capacity) this.byKey.delete(this.byKey.keys().next().value as string);
  }
}

/** See the module comment; `writes` remembers this caller's updates across calls. */
export async function createOrUpdate<T extends KubeObject, N extends boolean>(
  client: Client,
  kind: Kind<T, N>,
  key: { name: string; namespace?: string | undefined },
  mutate: (obj: Named<T, N>) => void,
  { writes }: { writes?: OwnWrites } = {},
): Promise<{ result: OperationResult; object: Named<T, N> }> {
  const id = `${kindId(kind)}/${key.namespace ?? ""}/${key.name}`;
  let live = await client.get(kind, key.name, key.namespace);
  if (live && writes) live = writes.latest(id, live);
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
  try {
    return await updateIfChanged(client, kind, live, mutate, id, writes);
  } catch (err) {
    if (!isConflict(err)) throw err;
    const fresh = await client.reader.get(kind, key.name, key.namespace);
    if (!fresh) throw err;
    return await updateIfChanged(client, kind, fresh, mutate, id, writes);
  }
}

async function updateIfChanged<T extends KubeObject, N extends boolean>(
  client: Client,
  kind: Kind<T, N>,
  live: Named<T, N>,
  mutate: (obj: Named<T, N>) => void,
  id: string,
  writes: OwnWrites | undefined,
): Promise<{ result: OperationResult; object: Named<T, N> }> {
  const copy = structuredClone(live);
  mutate(copy);
  if (jsonEqual(withoutStatus(copy), withoutStatus(live))) return { result: "unchanged", object: live };
  delete (copy as { status?: unknown }).status;
  const written = await client.update(kind, copy);
  writes?.record(id, live.metadata.resourceVersion, written);
  return { result: "updated", object: written };
}

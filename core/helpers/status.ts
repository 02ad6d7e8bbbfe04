/**
 * Writing the status subresource only when it changed, with optimistic concurrency.
 *
 * Guarantees:
 * - No request at all when the computed status equals `current.status` (deep equality as JSON sees
 *   it: key order and keys whose value is `undefined` do not matter, array order does). A reconcile
 *   that finds nothing new therefore writes nothing and does not wake its own watch.
 * - Never overwrites a status it did not see: the write is a PUT carrying the object's
 *   `resourceVersion`; on 409 Conflict the object is re-read from the API (not the cache, which may
 *   still be stale) and the status recomputed from it, up to {@link WRITE_STATUS_ATTEMPTS} attempts
 *   in all; the last conflict is then thrown (a rate-limited retry of the reconcile).
 * - Only the status changes: the status subresource ignores everything else in the body.
 *
 * Assumptions:
 * - The kind has a status subresource (for a CRD: `subresources.status`); without one the PUT goes
 *   to a path that does not exist and throws 404.
 * - `computeStatus` is pure and synchronous: it may run several times, and gets objects that may be
 *   frozen (copy before changing). It returns the whole status, not a patch.
 * - `obj.metadata.resourceVersion` is set (the object was read from the API or the cache).
 *
 * Caveats:
 * - The status must be plain JSON in the form the API server stores it: a `Date` (write
 *   an RFC 3339 string), a field the schema prunes, or a value the server defaults or normalises
 *   makes every comparison unequal and every reconcile write, waking itself in a loop.
 * - A conflict caused by a spec change also forces a recompute from the new object; the status then
 *   describes the new spec, which is what the next reconcile would write anyway.
 * - When the object is deleted between attempts, an {@link ApiError} 404 is thrown (`isNotFound`).
 */
import type { Client } from "../client/client.ts";
import { ApiError, isConflict } from "../client/rest.ts";
import { type Kind, objectPath } from "../kinds.ts";
import type { KubeObject, Named } from "../object.ts";

/** How many PUTs {@link writeStatus} tries before giving up on conflicts. */
export const WRITE_STATUS_ATTEMPTS = 5;

/** An object kind that has a status. */
export type WithStatus = KubeObject & { status?: unknown };

/** The outcome of {@link writeStatus}. */
export interface WriteStatusResult<T> {
  /** True when a status was written. */
  written: boolean;
  /** The API's answer after a write; otherwise the object the status was compared with. */
  object: T;
}

/** Deep equality of two JSON values; `undefined` members count as absent. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== "object" || typeof b !== "object" || a === null || b === null) return false;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((item, i) => jsonEqual(item, b[i]));
  }
  const left = a as Record<string, unknown>;
  const right = b as Record<string, unknown>;
  const leftKeys = Object.keys(left).filter((k) => left[k] !== undefined);
  const rightKeys = Object.keys(right).filter((k) => right[k] !== undefined);
  if (leftKeys.length !== rightKeys.length) return false;
  return leftKeys.every((k) => Object.hasOwn(right, k) && jsonEqual(left[k], right[k]));
}

/** Computes the status of `obj` and writes it when it differs from the stored one; see the module comment. */
export async function writeStatus<T extends WithStatus, N extends boolean>(
  client: Client,
  kind: Kind<T, N>,
  obj: Named<T, N>,
  computeStatus: (current: Named<T, N>) => NonNullable<T["status"]>,
): Promise<WriteStatusResult<Named<T, N>>> {
  const { name, namespace } = obj.metadata;
  if (!name) throw new Error(`writeStatus: the ${kind.kind} has no metadata.name`);
  let current = obj;
  for (let attempt = 1; ; attempt++) {
    const status = computeStatus(current);
    if (jsonEqual(status, current.status)) return { written: false, object: current };
    if (!current.metadata.resourceVersion) {
      throw new Error(
        `writeStatus: ${kind.kind} "${name}" has no metadata.resourceVersion; read it from the API or the cache first`,
      );
    }
    try {
      return { written: true, object: await client.updateStatus(kind, { ...current, status }) };
    } catch (err) {
      if (!isConflict(err) || attempt >= WRITE_STATUS_ATTEMPTS) throw err;
    }
    const fresh = await client.reader.get(kind, name, namespace);
    if (!fresh) {
      const path = objectPath(kind, name, namespace);
      throw new ApiError(
        "GET",
        path,
        404,
        { reason: "NotFound", code: 404 },
        `${kind.kind} "${name}" was deleted while its status was written`,
      );
    }
    current = fresh;
  }
}

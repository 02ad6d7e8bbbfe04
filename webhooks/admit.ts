/** Runs one AdmissionReview request through a registered webhook: schema, then plugin handler. */
import type { AdmissionContext, Client, KubeObject } from "../core/runtime.ts";
import { isCustomKind, type WebhookEntry } from "./registry.ts";
import {
  type AdmissionRequest,
  type AdmissionResponse,
  causesFromZod,
  denial,
  type FieldCause,
  isJsonObject,
  jsonPatch,
  type PatchOp,
} from "./review.ts";

/** Fills in what `target` lacks from `defaults` (recursively for objects); never changes what is set. */
function fillMissing(target: unknown, defaults: unknown): unknown {
  if (target === undefined) return defaults;
  if (!isJsonObject(target) || !isJsonObject(defaults)) return target;
  const out: Record<string, unknown> = { ...target };
  for (const [key, value] of Object.entries(defaults)) out[key] = fillMissing(target[key], value);
  return out;
}

/**
 * The spec's schema problems and, when `withDefaults`, the spec with the schema's defaults filled
 * in (only a defaulting webhook needs it: a validating one skips the copy).
 */
function schemaCauses(entry: WebhookEntry, obj: KubeObject, withDefaults: boolean): { causes: FieldCause[]; defaulted: unknown } {
  const spec = (obj as { spec?: unknown }).spec;
  if (!isCustomKind(entry.kind)) return { causes: [], defaulted: spec };
  const parsed = entry.kind.parseSpec(spec ?? {});
  if (parsed.success) return { causes: [], defaulted: withDefaults ? fillMissing(spec, parsed.data) : spec };
  return { causes: causesFromZod(parsed.error, "spec", spec ?? {}), defaulted: spec };
}

/**
 * The object as handlers see it: typed as stored, so `metadata.name` (absent on a CREATE with
 * generateName: then "") and, for a namespaced kind, `metadata.namespace` (from the request) are set.
 * Only metadata is copied; a patch is computed against this view, so the filled-in values are never
 * patched unless a defaulter changes them.
 */
function named(obj: Record<string, unknown>, entry: WebhookEntry, request: AdmissionRequest): KubeObject {
  const metadata = (isJsonObject(obj.metadata) ? obj.metadata : {}) as KubeObject["metadata"];
  return {
    ...obj,
    metadata: {
      ...metadata,
      name: metadata.name ?? request.name ?? "",
      ...(entry.kind.namespaced ? { namespace: metadata.namespace ?? request.namespace ?? "" } : {}),
    },
  };
}

const allowed = (request: AdmissionRequest, warnings: readonly string[] = []): AdmissionResponse => ({
  uid: request.uid,
  allowed: true,
  ...(warnings.length ? { warnings: [...warnings] } : {}),
});

/**
 * The JSON Patch operations that add `finalizers` a new object lacks: the controllers' own finalizers,
 * added here so they need not patch every new object. Only for objects this manager reconciles: in a
 * namespace it watches (on a 1.20 API server the webhooks' namespace selector cannot say so).
 */
function finalizerOps(object: KubeObject, finalizers: readonly string[], client: Client): PatchOp[] {
  const watched = client.cache.namespaces;
  const { namespace, finalizers: present, deletionTimestamp } = object.metadata;
  if (finalizers.length === 0 || deletionTimestamp || (namespace && watched.length > 0 && !watched.includes(namespace)))
    return [];
  const missing = finalizers.filter((f) => !present?.includes(f));
  if (missing.length === 0) return [];
  return present
    ? missing.map((f) => ({ op: "add", path: "/metadata/finalizers/-", value: f }))
    : [{ op: "add", path: "/metadata/finalizers", value: missing }];
}

/**
 * Admits or denies `request` with `entry`; throws only on a handler bug (the server answers 500).
 * `finalizers` are added to objects the defaulting webhook admits on CREATE.
 */
export async function admit(
  entry: WebhookEntry,
  request: AdmissionRequest,
  client: Client,
  finalizers: readonly string[] = [],
): Promise<AdmissionResponse> {
  const { operation } = request;
  if (operation === "CONNECT" || !entry.operations.includes(operation)) return allowed(request);
  // On DELETE the API server sends the object being deleted as oldObject and no object.
  const raw = operation === "DELETE" ? request.oldObject : request.object;
  if (!raw) return allowed(request);
  const object = named(raw, entry, request);
  const ctx: AdmissionContext<KubeObject> = {
    operation,
    oldObject: request.oldObject ? named(request.oldObject, entry, request) : undefined,
    client,
    userInfo: { username: request.userInfo?.username, groups: request.userInfo?.groups },
    dryRun: request.dryRun ?? false,
  };
  if (operation === "DELETE") {
    // The stored object passed validation when it was written; a schema that changed since must
    // not make it undeletable, so only the plugin's validator runs.
    const found = entry.validator ? await entry.validator(object, ctx) : {};
    const warnings = found.warnings ?? [];
    return found.causes?.length ? denial(request, found.causes, warnings) : allowed(request, warnings);
  }
  const { causes, defaulted } = schemaCauses(entry, object, entry.type === "mutating");
  if (entry.type === "mutating") {
    // A spec the schema rejects cannot be defaulted into a valid one: deny here, with every field
    // named, before the API server's own validation reports them one format at a time.
    if (causes.length > 0) return denial(request, causes);
    const spec = (object as { spec?: unknown }).spec;
    let ops: PatchOp[];
    let warnings: readonly string[] = [];
    if (!entry.defaulter) {
      ops = jsonPatch(spec, defaulted, "/spec");
    } else {
      // A deep copy taken after the schema defaults are in: `defaulted` shares nested values with
      // `object.spec`, and a defaulter changing them in place must not change the original.
      const withDefaults = defaulted === undefined ? object : { ...object, spec: defaulted };
      const result = JSON.parse(JSON.stringify(withDefaults)) as KubeObject;
      warnings = (await entry.defaulter(result, ctx))?.warnings ?? [];
      ops = jsonPatch(object, result);
    }
    if (operation === "CREATE") ops.push(...finalizerOps(object, finalizers, client));
    if (ops.length === 0) return allowed(request, warnings);
    return {
      ...allowed(request, warnings),
      patchType: "JSONPatch",
      patch: Buffer.from(JSON.stringify(ops)).toString("base64"),
    };
  }
  const found = entry.validator ? await entry.validator(object, ctx) : {};
  const all = [...causes, ...(found.causes ?? [])];
  const warnings = found.warnings ?? [];
  return all.length > 0 ? denial(request, all, warnings) : allowed(request, warnings);
}

/**
 * The WebApp operator written the Pepr way, as a benchmark peer of kubeplug's plugins/webapp.
 *
 * Same API (the CRD kubeplug generates, `webapp.example.com/v1` WebApp) and the same job:
 *  - Mutate: fill in missing replicas / port / serviceType (the CRD's own defaults usually got there first).
 *  - Validate: deny a bad spec naming the field; warn about untagged or ":latest" images.
 *  - Reconcile: server-side apply a Deployment and a Service owned by the WebApp, then write status
 *    (observedGeneration, availableReplicas, Available/Progressing/Degraded conditions) through the
 *    status subresource.
 *  - Self-heal: a deleted Deployment or Service is applied again from its owning WebApp.
 *
 * Differences from kubeplug, on purpose or forced by Pepr: no finalizer (kubeplug's scales the
 * Deployment to 0 and waits for pods on delete), no Events, and availableReplicas is refreshed when
 * the WebApp is reconciled, not on every Deployment status change (a Pepr binding takes one event
 * type, so that would be a second watch of all managed Deployments). Pepr's admission also adds
 * its own `kubeplug-bench.pepr.dev/webapp` annotation to every WebApp it mutates.
 */
import { a, Capability, K8s, kind, Log, RegisterKind } from "pepr";

export interface WebAppSpec {
  image?: string;
  replicas?: number;
  port?: number;
  serviceType?: string;
}

export interface Condition {
  type: string;
  status: "True" | "False" | "Unknown";
  reason: string;
  message: string;
  observedGeneration?: number;
  lastTransitionTime: string;
}

export interface WebAppStatus {
  availableReplicas?: number;
  observedGeneration?: number;
  conditions?: Condition[];
}

export class WebApp extends a.GenericKind {
  declare spec?: WebAppSpec;
  declare status?: WebAppStatus;
}

RegisterKind(WebApp, { group: "webapp.example.com", version: "v1", kind: "WebApp", plural: "webapps" });

/** Label on every child; the child watches select on it. */
export const MANAGED_BY_LABEL = "app.kubernetes.io/managed-by";
export const MANAGED_BY = "pepr";
const CONTAINER = "webapp";
export const SERVICE_TYPES = ["ClusterIP", "NodePort"];
export const DEFAULTS = { replicas: 1, port: 8080, serviceType: "ClusterIP" };

/** Same grammar as kubeplug's IMAGE_REFERENCE (plugins/webapp/api.ts). */
const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;
const IMAGE_EXAMPLE = "a container image reference such as nginx:1.27 or registry.example.com/team/app:v2";

export const WebAppOperator = new Capability({
  name: "webapp",
  description: "Runs each WebApp as a Deployment and a Service, kept that way.",
});

const { When } = WebAppOperator;

/** The problems of a spec, each naming its field; empty when valid. */
export function specProblems(spec: WebAppSpec | undefined): string[] {
  const problems: string[] = [];
  const s = spec ?? {};
  const isInt = (v: unknown) => typeof v === "number" && Number.isInteger(v);
  if (typeof s.image !== "string" || s.image === "") problems.push(`spec.image: image is required: ${IMAGE_EXAMPLE}`);
  else if (!IMAGE_REFERENCE.test(s.image)) problems.push(`spec.image: image must be ${IMAGE_EXAMPLE}`);
  if (s.replicas !== undefined && (!isInt(s.replicas) || s.replicas < 1 || s.replicas > 10)) {
    problems.push("spec.replicas: replicas must be between 1 and 10");
  }
  if (s.port !== undefined && (!isInt(s.port) || s.port < 1 || s.port > 65535)) {
    problems.push("spec.port: port must be between 1 and 65535");
  }
  if (s.serviceType !== undefined && !SERVICE_TYPES.includes(s.serviceType)) {
    problems.push(`spec.serviceType: serviceType must be one of ${SERVICE_TYPES.join(", ")}`);
  }
  return problems;
}

/** kubeplug's warnings (plugins/webapp/index.ts): images that make rollouts unpredictable. */
export function imageWarnings(image: string | undefined): string[] {
  if (!image) return [];
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  if (!lastSegment.includes(":") && !image.includes("@")) {
    return [`spec.image "${image}" has no tag: the node pulls ":latest", which changes under you; pin a tag or digest`];
  }
  if (lastSegment.endsWith(":latest"))
    return [`spec.image "${image}" uses ":latest", which changes under you; pin a tag or digest`];
  return [];
}

// Defaulting: only what is missing.
When(WebApp)
  .IsCreatedOrUpdated()
  .Mutate((req) => {
    req.Raw.spec ??= {};
    const spec = req.Raw.spec;
    spec.replicas ??= DEFAULTS.replicas;
    spec.port ??= DEFAULTS.port;
    spec.serviceType ??= DEFAULTS.serviceType;
  });

// Validation. Note the API server checks the CRD's schema before validating webhooks, so a spec
// the schema already refuses (replicas 11) is denied by the API server before this runs.
When(WebApp)
  .IsCreatedOrUpdated()
  .Validate((req) => {
    const problems = specProblems(req.Raw.spec);
    if (problems.length > 0) return req.Deny(`WebApp ${req.Raw.metadata?.name}: ${problems.join("; ")}`, 422);
    return req.Approve(imageWarnings(req.Raw.spec?.image));
  });

// Reconcile: queued per object by Pepr. A MODIFIED event whose generation was already observed is
// the echo of our own status write (or a metadata change): skip it, like kubeplug's
// generationChanged predicate. ADDED (including the initial list after a restart) always reconciles.
When(WebApp)
  .IsCreatedOrUpdated()
  .Reconcile(async (app, phase) => {
    if (String(phase) === "MODIFIED" && app.status?.observedGeneration === app.metadata?.generation) return;
    await reconcile(app);
  });

// Self-heal: a managed child was deleted; apply it again from its owner.
When(a.Deployment)
  .IsDeleted()
  .WithLabel(MANAGED_BY_LABEL, MANAGED_BY)
  .Watch(async (deployment) => healFrom(deployment));
When(a.Service)
  .IsDeleted()
  .WithLabel(MANAGED_BY_LABEL, MANAGED_BY)
  .Watch(async (service) => healFrom(service));

async function healFrom(child: { metadata?: a.GenericKind["metadata"] }): Promise<void> {
  const owner = child.metadata?.ownerReferences?.find((r) => r.controller && r.kind === "WebApp");
  const namespace = child.metadata?.namespace;
  if (!owner || !namespace) return;
  let app: WebApp;
  try {
    app = await K8s(WebApp).InNamespace(namespace).Get(owner.name);
  } catch (err) {
    if ((err as { status?: number }).status === 404) return; // the owner is gone: garbage collection
    throw err;
  }
  if (app.metadata?.uid !== owner.uid) return; // a different WebApp of the same name
  await reconcile(app);
}

function labelsOf(name: string): Record<string, string> {
  return { app: name, [MANAGED_BY_LABEL]: MANAGED_BY };
}

/** Applies the Deployment and the Service the WebApp wants, then writes its status if it changed. */
export async function reconcile(app: WebApp): Promise<void> {
  const name = app.metadata?.name;
  const namespace = app.metadata?.namespace;
  if (!name || !namespace || app.metadata?.deletionTimestamp) return;
  const spec = { ...DEFAULTS, ...app.spec };
  const owner = {
    apiVersion: "webapp.example.com/v1",
    kind: "WebApp",
    name,
    uid: app.metadata?.uid as string,
    controller: true,
    blockOwnerDeletion: true,
  };
  const metadata = { name, namespace, labels: labelsOf(name), ownerReferences: [owner] };
  try {
    const deployment = await K8s(kind.Deployment).Apply(
      {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata,
        spec: {
          replicas: spec.replicas,
          selector: { matchLabels: { app: name } },
          template: {
            metadata: { labels: labelsOf(name) },
            spec: {
              containers: [
                { name: CONTAINER, image: spec.image, ports: [{ name: "http", containerPort: spec.port, protocol: "TCP" }] },
              ],
            },
          },
        },
      },
      { force: true },
    );
    await K8s(kind.Service).Apply(
      {
        apiVersion: "v1",
        kind: "Service",
        metadata,
        spec: {
          type: spec.serviceType,
          selector: { app: name },
          ports: [{ name: "http", port: 80, targetPort: spec.port, protocol: "TCP" }],
        },
      },
      { force: true },
    );
    await writeStatus(app, statusFor(app, deployment.status?.availableReplicas ?? 0));
  } catch (err) {
    Log.error({ err, name, namespace }, "WebApp reconcile failed");
    await writeStatus(app, degraded(app, err)).catch(() => undefined);
    throw err;
  }
}

/** JSON with object keys sorted, so two statuses compare equal whatever order the server keeps. */
function canonical(value: unknown): string {
  return JSON.stringify(value, (_key, v) =>
    v && typeof v === "object" && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v).sort(([x], [y]) => x.localeCompare(y)))
      : v,
  );
}

async function writeStatus(app: WebApp, status: WebAppStatus): Promise<void> {
  if (canonical(status) === canonical(app.status ?? {})) return;
  await K8s(WebApp).PatchStatus({ metadata: { name: app.metadata?.name, namespace: app.metadata?.namespace }, status });
}

/** Sets a condition, keeping lastTransitionTime when its status did not change. */
function setCondition(conditions: Condition[], next: Omit<Condition, "lastTransitionTime">): Condition[] {
  const old = conditions.find((c) => c.type === next.type);
  const lastTransitionTime =
    old && old.status === next.status ? old.lastTransitionTime : new Date().toISOString().replace(/\.\d+Z$/, "Z");
  const updated = { ...next, lastTransitionTime };
  return old ? conditions.map((c) => (c.type === next.type ? updated : c)) : [...conditions, updated];
}

function statusFor(app: WebApp, available: number): WebAppStatus {
  const generation = app.metadata?.generation;
  const want = app.spec?.replicas ?? DEFAULTS.replicas;
  const ready = available >= want;
  let conditions = [...(app.status?.conditions ?? [])];
  conditions = setCondition(conditions, {
    type: "Available",
    status: ready ? "True" : "False",
    reason: ready ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
    message: `${available} of ${want} replica(s) available`,
    observedGeneration: generation,
  });
  conditions = setCondition(conditions, {
    type: "Progressing",
    status: ready ? "False" : "True",
    reason: ready ? "Complete" : "ReplicasUpdating",
    message: ready ? "The Deployment and Service match the spec" : `Waiting for ${want - available} more replica(s)`,
    observedGeneration: generation,
  });
  conditions = setCondition(conditions, {
    type: "Degraded",
    status: "False",
    reason: "AsExpected",
    message: "Reconciled without errors",
    observedGeneration: generation,
  });
  return { availableReplicas: available, observedGeneration: generation, conditions };
}

function degraded(app: WebApp, err: unknown): WebAppStatus {
  const message = err instanceof Error ? err.message : JSON.stringify(err);
  return {
    ...app.status,
    conditions: setCondition(app.status?.conditions ?? [], {
      type: "Degraded",
      status: "True",
      reason: "ReconcileError",
      message: (message || "unknown error").slice(0, 1000),
      observedGeneration: app.metadata?.generation,
    }),
  };
}

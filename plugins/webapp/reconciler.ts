/**
 * Keeps a Deployment and a Service owned by each WebApp and reports status. Children are set as
 * mutations of the live object, keeping what the API server or others own (defaults, node ports).
 */
import { Action, ApiError, k8s, type ReconcileContext, withConditions } from "../../core/index.ts";
import type { WebApp, WebAppStatus } from "./api.ts";

export const FINALIZER = "webapp.example.com/finalizer";
/** How long deletion waits for the pods to go before it lets garbage collection proceed anyway. */
export const POD_DRAIN_TIMEOUT_MS = 60_000;

/** Reconciles one WebApp; a failure is also reported as the Degraded condition. */
export async function reconcileWebApp(app: WebApp, ctx: ReconcileContext<WebApp>) {
  const labels = { app: app.metadata.name, "app.kubernetes.io/managed-by": "kubeplug" };
  try {
    const deployment = await ctx.own(k8s.Deployment, app.metadata.name, (d) => {
      d.metadata.labels = { ...d.metadata.labels, ...labels };
      const spec = d.spec ?? { selector: {}, template: {} };
      spec.replicas = app.spec.replicas;
      spec.selector = { matchLabels: { app: app.metadata.name } };
      spec.template.metadata = { ...spec.template.metadata, labels: { ...spec.template.metadata?.labels, ...labels } };
      const pod = spec.template.spec ?? { containers: [] };
      const ports = [{ name: "http", containerPort: app.spec.port, protocol: "TCP" }];
      const live = pod.containers.find((c) => c.name === "webapp");
      pod.containers = [{ ...live, name: "webapp", image: app.spec.image, ports }];
      d.spec = { ...spec, template: { ...spec.template, spec: pod } };
    });
    await ctx.own(k8s.Service, app.metadata.name, (s) => {
      s.metadata.labels = { ...s.metadata.labels, ...labels };
      const spec = s.spec ?? {};
      // Keep an allocated node port while NodePort; the API server refuses one on a ClusterIP Service.
      const nodePort = app.spec.serviceType === "NodePort" ? spec.ports?.[0]?.nodePort : undefined;
      spec.type = app.spec.serviceType;
      spec.selector = { app: app.metadata.name };
      spec.ports = [{ name: "http", port: 80, targetPort: app.spec.port, protocol: "TCP", ...(nodePort ? { nodePort } : {}) }];
      if (app.spec.serviceType === "ClusterIP") delete spec.externalTrafficPolicy;
      s.spec = spec;
    });
    await ctx.status((current) => statusFor(current, deployment.status?.availableReplicas ?? 0));
  } catch (err) {
    // A Conflict lost a race with another writer (the controller manager's status write, say); the
    // controller requeues it quietly: not a degradation worth a status write.
    if (err instanceof ApiError && err.code === 409) throw err;
    const message = (err instanceof Error ? err.message : String(err)).slice(0, 1000);
    const degraded = { Degraded: { status: true, reason: "ReconcileError", message } };
    await ctx.status((current) => ({ ...current.status, conditions: withConditions(current, degraded) })).catch(() => undefined);
    throw err;
  }
  return Action.awaitChange();
}

function statusFor(app: WebApp, available: number): WebAppStatus {
  const want = app.spec.replicas;
  const ready = available >= want;
  const conditions = withConditions(app, {
    Available: {
      status: ready,
      reason: ready ? "MinimumReplicasAvailable" : "MinimumReplicasUnavailable",
      message: `${available} of ${want} replica(s) available`,
    },
    Progressing: {
      status: !ready,
      reason: ready ? "Complete" : "ReplicasUpdating",
      message: ready ? "The Deployment and Service match the spec" : `Waiting for ${want - available} more replica(s)`,
    },
    Degraded: { status: false, reason: "AsExpected", message: "Reconciled without errors" },
  });
  return { availableReplicas: available, observedGeneration: app.metadata.generation, conditions };
}

/** The finalizer's cleanup: scale to zero, then wait for the pods (at most POD_DRAIN_TIMEOUT_MS). */
export async function drainPods(app: WebApp, ctx: ReconcileContext<WebApp>) {
  const { name, namespace } = app.metadata;
  const deployment = await ctx.client.get(k8s.Deployment, name, namespace);
  if (deployment && deployment.spec?.replicas !== 0) {
    await ctx.client.patch(k8s.Deployment, name, namespace, { spec: { replicas: 0 } });
    ctx.event("Normal", "ScalingDown", `Scaling Deployment ${name} to 0 before deletion`);
  }
  const pods = deployment ? await ctx.client.reader.list(k8s.Pod, namespace, `app=${name}`) : [];
  const deletingFor = Date.now() - Date.parse(app.metadata.deletionTimestamp ?? new Date().toISOString());
  if (pods.length > 0 && deletingFor < POD_DRAIN_TIMEOUT_MS) return Action.requeueAfter(1_000);
  if (pods.length > 0) {
    ctx.event(
      "Warning",
      "DrainTimeout",
      `${pods.length} pod(s) still running after ${POD_DRAIN_TIMEOUT_MS / 1000} s; deleting anyway`,
    );
  }
  ctx.event("Normal", "Finalized", `Pods of ${name} are gone; the Deployment and Service will be garbage-collected`);
  return Action.awaitChange();
}

/**
 * The WebApp reconciler: keeps a Deployment and a Service owned by each WebApp, reports status
 * through the status subresource, and on deletion scales the Deployment to zero and waits (bounded)
 * for its pods before letting garbage collection remove the children.
 */
import {
  Action,
  type Condition,
  createOrUpdate,
  DeploymentKind,
  finalizer,
  PodKind,
  type ReconcileContext,
  type Request,
  ServiceKind,
  setCondition,
  writeStatus,
} from "../../core/index.ts";
import { type WebApp, WebAppKind, type WebAppStatus } from "./api.ts";
import { deploymentFor, serviceFor } from "./resources.ts";

export const FINALIZER = "webapp.example.com/finalizer";
/** How long deletion waits for the pods to go before it lets garbage collection proceed anyway. */
export const POD_DRAIN_TIMEOUT_MS = 60_000;

/** Reconciles one WebApp. */
export async function reconcileWebApp(request: Request, ctx: ReconcileContext) {
  const app = await ctx.client.get(WebAppKind, request.name, request.namespace);
  if (!app) return Action.awaitChange(); // gone: its children are garbage-collected
  try {
    return await finalizer(ctx.client, WebAppKind, FINALIZER, app, (event) =>
      event.type === "apply" ? apply(event.obj, ctx) : cleanup(event.obj, ctx),
    );
  } catch (err) {
    ctx.recorder.event(app, "Warning", "ReconcileError", err instanceof Error ? err.message : String(err));
    await reportDegraded(app, ctx, err).catch(() => undefined);
    throw err;
  }
}

async function apply(app: WebApp, ctx: ReconcileContext) {
  const { client, recorder } = ctx;
  const key = { name: app.metadata.name as string, namespace: app.metadata.namespace as string };
  const { spec } = app;
  const deployment = await createOrUpdate(client, DeploymentKind, key, deploymentFor(app));
  if (deployment.result !== "unchanged") {
    const verb = deployment.result === "created" ? "Created" : "Updated";
    recorder.event(
      app,
      "Normal",
      `${verb}Deployment`,
      `${verb} Deployment ${key.name} with ${spec.replicas} replica(s) of ${spec.image}`,
    );
  }
  const service = await createOrUpdate(client, ServiceKind, key, serviceFor(app));
  if (service.result !== "unchanged") {
    const verb = service.result === "created" ? "Created" : "Updated";
    recorder.event(
      app,
      "Normal",
      `${verb}Service`,
      `${verb} Service ${key.name} (${spec.serviceType}) on port 80 -> ${spec.port}`,
    );
  }
  const available = deployment.object.status?.availableReplicas ?? 0;
  await writeStatus(ctx.client, WebAppKind, app, (current) => statusFor(current, available));
  return Action.awaitChange();
}

function statusFor(app: WebApp, available: number): WebAppStatus {
  const generation = app.metadata.generation;
  const want = app.spec.replicas;
  const ready = available >= want;
  let conditions: Condition[] = [...(app.status?.conditions ?? [])];
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

async function reportDegraded(app: WebApp, ctx: ReconcileContext, err: unknown): Promise<void> {
  await writeStatus(ctx.client, WebAppKind, app, (current) => ({
    ...current.status,
    conditions: setCondition(current.status?.conditions, {
      type: "Degraded",
      status: "True",
      reason: "ReconcileError",
      message: (err instanceof Error ? err.message : String(err)).slice(0, 1000),
      observedGeneration: current.metadata.generation,
    }),
  }));
}

async function cleanup(app: WebApp, ctx: ReconcileContext) {
  const { client, recorder } = ctx;
  const ns = app.metadata.namespace as string;
  const name = app.metadata.name as string;
  const deployment = await client.get(DeploymentKind, name, ns);
  if (deployment && deployment.spec?.replicas !== 0) {
    await client.patch(DeploymentKind, name, ns, { spec: { replicas: 0 } });
    recorder.event(app, "Normal", "ScalingDown", `Scaling Deployment ${name} to 0 before deletion`);
  }
  // Pods are read uncached: only deletion needs them, and caching every pod would cost memory.
  const pods = deployment ? await client.reader.list(PodKind, ns, `app=${name}`) : [];
  const deletingFor = Date.now() - Date.parse(app.metadata.deletionTimestamp ?? new Date().toISOString());
  if (pods.length > 0 && deletingFor < POD_DRAIN_TIMEOUT_MS) return Action.requeueAfter(1_000);
  if (pods.length > 0) {
    recorder.event(
      app,
      "Warning",
      "DrainTimeout",
      `${pods.length} pod(s) still running after ${POD_DRAIN_TIMEOUT_MS / 1000} s; deleting anyway`,
    );
  }
  recorder.event(app, "Normal", "Finalized", `Pods of ${name} are gone; the Deployment and Service will be garbage-collected`);
  return Action.awaitChange();
}

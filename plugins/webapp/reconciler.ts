/**
 * The WebApp reconciler: keeps a Deployment and a Service owned by each WebApp, reports status
 * through the status subresource, and on deletion scales the Deployment to zero and waits (bounded)
 * for its pods before letting garbage collection remove the children.
 */
import {
  Action,
  type Condition,
  DeploymentKind,
  finalizer,
  isAlreadyExists,
  PodKind,
  type ReconcileContext,
  type Request,
  ServiceKind,
  setCondition,
  writeStatus,
} from "../../core/index.ts";
import { type WebApp, WebAppKind, type WebAppStatus } from "./api.ts";
import { desiredDeployment, desiredService, repairDeployment, repairService } from "./resources.ts";

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
  const ns = app.metadata.namespace as string;
  const name = app.metadata.name as string;

  const wantDeployment = desiredDeployment(app);
  const liveDeployment = await client.get(DeploymentKind, name, ns);
  let deployment = liveDeployment;
  if (!liveDeployment) {
    deployment = await createIgnoringRace(() => client.create(DeploymentKind, wantDeployment));
    if (deployment)
      recorder.event(
        app,
        "Normal",
        "CreatedDeployment",
        `Created Deployment ${name} with ${app.spec.replicas} replica(s) of ${app.spec.image}`,
      );
  } else {
    const repaired = repairDeployment(liveDeployment, wantDeployment);
    if (repaired) {
      deployment = await client.update(DeploymentKind, repaired);
      recorder.event(
        app,
        "Normal",
        "UpdatedDeployment",
        `Updated Deployment ${name} to ${app.spec.replicas} replica(s) of ${app.spec.image}`,
      );
    }
  }

  const wantService = desiredService(app);
  const liveService = await client.get(ServiceKind, name, ns);
  if (!liveService) {
    if (await createIgnoringRace(() => client.create(ServiceKind, wantService))) {
      recorder.event(
        app,
        "Normal",
        "CreatedService",
        `Created Service ${name} (${app.spec.serviceType}) on port 80 -> ${app.spec.port}`,
      );
    }
  } else {
    const repaired = repairService(liveService, wantService);
    if (repaired) {
      await client.update(ServiceKind, repaired);
      recorder.event(
        app,
        "Normal",
        "UpdatedService",
        `Updated Service ${name} (${app.spec.serviceType}) on port 80 -> ${app.spec.port}`,
      );
    }
  }

  const available = deployment?.status?.availableReplicas ?? 0;
  await writeStatus(ctx.client, WebAppKind, app, (current) => statusFor(current, available));
  return Action.awaitChange();
}

/** A create that lost a race with the cache (the child exists already) is not an error: the next event brings it. */
async function createIgnoringRace<T>(create: () => Promise<T>): Promise<T | undefined> {
  try {
    return await create();
  } catch (err) {
    if (isAlreadyExists(err)) return undefined;
    throw err;
  }
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

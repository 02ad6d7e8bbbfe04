/**
 * Keeps a Tenant's Namespace, ResourceQuota and admin RoleBinding, all owned by the Tenant. On
 * deletion it deletes the namespace and waits (bounded) until it is gone, showing progress.
 */
import {
  Action,
  controllerReference,
  createOrUpdate,
  finalizer,
  isNotFound,
  type KubeObject,
  NamespaceKind,
  type ReconcileContext,
  type Request,
  ResourceQuotaKind,
  RoleBindingKind,
  setCondition,
  writeStatus,
} from "../../core/index.ts";
import { TENANT_LABEL, type Tenant, TenantKind } from "./api.ts";
import { sameQuantity } from "./quantity.ts";

export const FINALIZER = "platform.example.com/finalizer";
export const NAMESPACE_DELETE_TIMEOUT_MS = 5 * 60_000;
const QUOTA = "tenant-quota";
const ADMINS = "tenant-admins";

export async function reconcileTenant(request: Request, ctx: ReconcileContext) {
  const tenant = await ctx.client.get(TenantKind, request.name);
  if (!tenant) return Action.awaitChange();
  return finalizer(ctx.client, TenantKind, FINALIZER, tenant, (e) =>
    e.type === "apply" ? apply(e.obj, ctx) : cleanup(e.obj, ctx),
  );
}

async function status(
  ctx: ReconcileContext,
  tenant: Tenant,
  phase: "Active" | "Failed" | "Terminating",
  type: string,
  ok: boolean,
  reason: string,
  message: string,
) {
  await writeStatus(ctx.client, TenantKind, tenant, (t) => ({
    phase,
    observedGeneration: t.metadata.generation,
    conditions: setCondition(t.status?.conditions, {
      type,
      status: ok ? "True" : "False",
      reason,
      message,
      observedGeneration: t.metadata.generation,
    }),
  }));
}

async function apply(tenant: Tenant, ctx: ReconcileContext) {
  const { client, recorder } = ctx;
  const ns = tenant.spec.namespace;
  const owner = controllerReference(tenant, TenantKind);
  const live = await client.get(NamespaceKind, ns);
  const liveOwner = live?.metadata.ownerReferences?.find((r) => r.controller);
  if (live && liveOwner?.uid !== tenant.metadata.uid) {
    const who = liveOwner ? `${liveOwner.kind} ${liveOwner.name}` : "nobody (it existed before the Tenant)";
    await status(ctx, tenant, "Failed", "Ready", false, "NamespaceTaken", `namespace ${ns} is controlled by ${who}`);
    return Action.awaitChange();
  }
  if (live?.metadata.deletionTimestamp) return Action.awaitChange(); // recreated once it is gone
  const children: { result: string; object: KubeObject }[] = [
    await createOrUpdate(client, NamespaceKind, { name: ns }, (n) => {
      n.metadata.labels = { ...n.metadata.labels, ...tenant.spec.labels, [TENANT_LABEL]: tenant.metadata.name as string };
      n.metadata.ownerReferences = [owner];
    }),
    await createOrUpdate(client, RoleBindingKind, { name: ADMINS, namespace: ns }, (rb) => {
      rb.metadata.ownerReferences = [owner];
      rb.roleRef = { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" };
      rb.subjects = tenant.spec.owners.map((o) => ({ apiGroup: "rbac.authorization.k8s.io", kind: o.kind, name: o.name }));
    }),
  ];
  const quota = tenant.spec.quota;
  if (quota && (quota.cpu || quota.memory || quota.pods)) {
    const hard = Object.fromEntries(
      Object.entries({ "requests.cpu": quota.cpu, "requests.memory": quota.memory, pods: quota.pods }).filter(([, v]) => v),
    );
    children.push(
      await createOrUpdate(client, ResourceQuotaKind, { name: QUOTA, namespace: ns }, (q) => {
        q.metadata.ownerReferences = [owner];
        // The API server stores quantities canonical (0.5 -> 500m): keep the live spelling of an equal value.
        const live = q.spec?.hard ?? {};
        const want = Object.fromEntries(
          Object.entries(hard as Record<string, string>).map(([k, v]) => [k, sameQuantity(live[k], v) ? (live[k] as string) : v]),
        );
        q.spec = { ...q.spec, hard: want };
      }),
    );
  } else {
    const stale = await client.get(ResourceQuotaKind, QUOTA, ns);
    if (stale?.metadata.ownerReferences?.some((r) => r.controller && r.uid === tenant.metadata.uid))
      await client.delete(ResourceQuotaKind, QUOTA, ns, { uid: stale.metadata.uid as string });
  }
  for (const { result, object } of children) {
    if (result !== "unchanged")
      recorder.event(
        tenant,
        "Normal",
        result === "created" ? "Created" : "Updated",
        `${result} ${object.kind} ${object.metadata.name} in ${ns}`,
      );
  }
  await status(
    ctx,
    tenant,
    "Active",
    "Ready",
    true,
    "NamespaceReady",
    `namespace ${ns} is ready for ${tenant.spec.owners.length} owner(s)`,
  );
  return Action.awaitChange();
}

async function cleanup(tenant: Tenant, ctx: ReconcileContext) {
  const ns = tenant.spec.namespace;
  const live = await ctx.client.get(NamespaceKind, ns);
  if (!live || live.metadata.ownerReferences?.find((r) => r.controller)?.uid !== tenant.metadata.uid) return Action.awaitChange();
  const waited = Date.now() - Date.parse(tenant.metadata.deletionTimestamp as string);
  if (waited > NAMESPACE_DELETE_TIMEOUT_MS) {
    ctx.recorder.event(
      tenant,
      "Warning",
      "NamespaceDeleteTimeout",
      `namespace ${ns} still exists after ${NAMESPACE_DELETE_TIMEOUT_MS / 60_000} min; releasing the Tenant`,
    );
    return Action.awaitChange();
  }
  if (!live.metadata.deletionTimestamp) {
    await ctx.client.delete(NamespaceKind, ns).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    ctx.recorder.event(tenant, "Normal", "DeletingNamespace", `deleting namespace ${ns}`);
  }
  await status(
    ctx,
    tenant,
    "Terminating",
    "NamespaceDeleting",
    true,
    "WaitingForNamespace",
    `waiting for namespace ${ns} to be deleted (${Math.round(waited / 1000)} s so far)`,
  );
  return Action.requeueAfter(2_000);
}

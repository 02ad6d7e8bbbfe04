/**
 * Keeps a Tenant's Namespace, ResourceQuota and admin RoleBinding, all owned by the Tenant. On
 * deletion it deletes the namespace and waits (bounded) until it is gone, showing progress.
 */
import { Action, isNotFound, k8s, type ReconcileContext, sameQuantity, withConditions } from "../../core/index.ts";
import { TENANT_LABEL, type Tenant } from "./api.ts";

export const FINALIZER = "platform.example.com/finalizer";
export const NAMESPACE_DELETE_TIMEOUT_MS = 5 * 60_000;
const QUOTA = "tenant-quota";
const ADMINS = "tenant-admins";

type Phase = "Active" | "Failed" | "Terminating";

function status(ctx: ReconcileContext<Tenant>, phase: Phase, type: string, ok: boolean, reason: string, message: string) {
  const conditions = { [type]: { status: ok, reason, message } };
  return ctx.status((t) => ({ phase, observedGeneration: t.metadata.generation, conditions: withConditions(t, conditions) }));
}

export async function reconcileTenant(tenant: Tenant, ctx: ReconcileContext<Tenant>) {
  const ns = tenant.spec.namespace;
  const live = await ctx.client.get(k8s.Namespace, ns);
  const liveOwner = live?.metadata.ownerReferences?.find((r) => r.controller);
  if (live && liveOwner?.uid !== tenant.metadata.uid) {
    const who = liveOwner ? `${liveOwner.kind} ${liveOwner.name}` : "nobody (it existed before the Tenant)";
    await status(ctx, "Failed", "Ready", false, "NamespaceTaken", `namespace ${ns} is controlled by ${who}`);
    return Action.awaitChange();
  }
  if (live?.metadata.deletionTimestamp) return Action.awaitChange(); // recreated once it is gone
  await ctx.own(k8s.Namespace, ns, (n) => {
    n.metadata.labels = { ...n.metadata.labels, ...tenant.spec.labels, [TENANT_LABEL]: tenant.metadata.name };
  });
  await ctx.own(k8s.RoleBinding, { name: ADMINS, namespace: ns }, (rb) => {
    rb.roleRef = { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" };
    rb.subjects = tenant.spec.owners.map((o) => ({ apiGroup: "rbac.authorization.k8s.io", kind: o.kind, name: o.name }));
  });
  const { cpu, memory, pods } = tenant.spec.quota ?? {};
  const hard = Object.entries({ "requests.cpu": cpu, "requests.memory": memory, pods }).filter(
    (e): e is [string, string] => e[1] !== undefined,
  );
  if (hard.length > 0) {
    await ctx.own(k8s.ResourceQuota, { name: QUOTA, namespace: ns }, (q) => {
      // The API server stores quantities canonical (0.5 -> 500m): keep the live spelling of an equal value.
      const live = q.spec?.hard ?? {};
      q.spec = {
        ...q.spec,
        hard: Object.fromEntries(hard.map(([k, v]) => [k, live[k] && sameQuantity(live[k], v) ? live[k] : v])),
      };
    });
  } else {
    const stale = await ctx.client.get(k8s.ResourceQuota, QUOTA, ns);
    if (stale?.metadata.ownerReferences?.some((r) => r.controller && r.uid === tenant.metadata.uid))
      await ctx.client.delete(k8s.ResourceQuota, QUOTA, ns, { uid: stale.metadata.uid });
  }
  const message = `namespace ${ns} is ready for ${tenant.spec.owners.length} owner(s)`;
  await status(ctx, "Active", "Ready", true, "NamespaceReady", message);
  return Action.awaitChange();
}

/** The finalizer's cleanup: delete the Tenant's namespace and wait (bounded) until it is gone. */
export async function deleteNamespace(tenant: Tenant, ctx: ReconcileContext<Tenant>) {
  const ns = tenant.spec.namespace;
  const live = await ctx.client.get(k8s.Namespace, ns);
  if (!live || live.metadata.ownerReferences?.find((r) => r.controller)?.uid !== tenant.metadata.uid) return Action.awaitChange();
  const waited = Date.now() - Date.parse(tenant.metadata.deletionTimestamp ?? new Date().toISOString());
  if (waited > NAMESPACE_DELETE_TIMEOUT_MS) {
    const minutes = NAMESPACE_DELETE_TIMEOUT_MS / 60_000;
    ctx.event("Warning", "NamespaceDeleteTimeout", `namespace ${ns} still exists after ${minutes} min; releasing the Tenant`);
    return Action.awaitChange();
  }
  if (!live.metadata.deletionTimestamp) {
    await ctx.client.delete(k8s.Namespace, ns).catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
    ctx.event("Normal", "DeletingNamespace", `deleting namespace ${ns}`);
  }
  const message = `waiting for namespace ${ns} to be deleted (${Math.round(waited / 1000)} s so far)`;
  await status(ctx, "Terminating", "NamespaceDeleting", true, "WaitingForNamespace", message);
  return Action.requeueAfter(2_000);
}

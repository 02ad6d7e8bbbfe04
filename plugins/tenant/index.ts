/** The Tenant plugin: a Tenant becomes a namespace with a quota and admin rights for its owners. */
import { definePlugin, generationChanged, k8s } from "../../core/index.ts";
import { TenantKind } from "./api.ts";
import { deleteNamespace, FINALIZER, reconcileTenant } from "./reconciler.ts";
import { BY_NAMESPACE, defaultTenant, validateTenant } from "./webhooks.ts";

export { type Tenant, TenantKind } from "./api.ts";

export const tenantPlugin = definePlugin({
  name: "tenant",
  kinds: [TenantKind],
  // Granting the built-in admin ClusterRole needs `bind` on it (RBAC's escalation check), nothing more.
  rbac: [{ kind: k8s.ClusterRole, verbs: ["bind"], resourceNames: ["admin"] }],
  setup(ctx) {
    ctx.addIndex(TenantKind, BY_NAMESPACE, (t) => [t.spec.namespace]);
    ctx
      .controller("tenant")
      .for(TenantKind, { predicates: [generationChanged()] })
      .owns(k8s.Namespace)
      .owns(k8s.ResourceQuota)
      .owns(k8s.RoleBinding)
      // A namespace that is not the Tenant's (NamespaceTaken) wakes the Tenants claiming it when it changes or goes.
      .watches(k8s.Namespace, async (ns) =>
        (await ctx.client.list(TenantKind, { index: { name: BY_NAMESPACE, value: ns.metadata.name } })).map((t) => t.metadata),
      )
      .finalizer(FINALIZER, deleteNamespace)
      .reconcile(reconcileTenant);
    ctx
      .webhooks(TenantKind)
      .default(defaultTenant)
      .validate(validateTenant, { operations: ["CREATE", "UPDATE", "DELETE"] });
  },
});

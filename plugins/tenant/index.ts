/** The Tenant plugin: a Tenant becomes a namespace with a quota and admin rights for its owners. */
import { definePlugin, generationChanged, NamespaceKind, ResourceQuotaKind, RoleBindingKind } from "../../core/index.ts";
import { WEBHOOKS } from "../../webhooks/index.ts";
import { TenantKind } from "./api.ts";
import { reconcileTenant } from "./reconciler.ts";
import { BY_NAMESPACE, defaultTenant, validateTenant } from "./webhooks.ts";

export { type Tenant, TenantKind } from "./api.ts";

export const tenantPlugin = definePlugin({
  name: "tenant",
  kinds: [TenantKind],
  rbac: [
    { apiGroups: ["platform.example.com"], resources: ["tenants"], verbs: ["get", "list", "watch", "update", "patch"] },
    { apiGroups: ["platform.example.com"], resources: ["tenants/status"], verbs: ["get", "update", "patch"] },
    { apiGroups: ["platform.example.com"], resources: ["tenants/finalizers"], verbs: ["update"] },
    {
      apiGroups: [""],
      resources: ["namespaces", "resourcequotas"],
      verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    {
      apiGroups: ["rbac.authorization.k8s.io"],
      resources: ["rolebindings"],
      verbs: ["get", "list", "watch", "create", "update", "patch", "delete"],
    },
    // Granting the built-in admin ClusterRole needs `bind` on it (RBAC's escalation check), nothing more.
    { apiGroups: ["rbac.authorization.k8s.io"], resources: ["clusterroles"], verbs: ["bind"], resourceNames: ["admin"] },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  ],
  setup(ctx) {
    ctx.addIndex(TenantKind, BY_NAMESPACE, (t) => [t.spec.namespace]);
    ctx
      .controller("tenant")
      .for(TenantKind, { predicates: [generationChanged()] })
      .owns(NamespaceKind)
      .owns(ResourceQuotaKind)
      .owns(RoleBindingKind)
      // A namespace that is not the Tenant's (NamespaceTaken) wakes the Tenants claiming it when it changes or goes.
      .watches(NamespaceKind, (ns) =>
        ctx.cache
          .informer(TenantKind)
          .list({ index: { name: BY_NAMESPACE, value: ns.metadata.name as string } })
          .map((t) => ({ name: t.metadata.name as string })),
      )
      .reconcile(reconcileTenant);
    ctx.extension(WEBHOOKS).defaulter(TenantKind, defaultTenant).validator(TenantKind, validateTenant);
  },
});

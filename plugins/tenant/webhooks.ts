/** Tenant admission: the tenant label on the namespace, an immutable namespace, one Tenant per namespace. */
import type { AdmissionContext, FieldCause, ValidationResult } from "../../webhooks/index.ts";
import { TENANT_LABEL, type Tenant, TenantKind } from "./api.ts";

export const BY_NAMESPACE = "spec.namespace";
const RESERVED = /^(kube-.*|default)$/;

export function defaultTenant(tenant: Tenant): Tenant {
  tenant.spec.labels = { ...tenant.spec.labels, [TENANT_LABEL]: tenant.metadata.name as string };
  return tenant;
}

export async function validateTenant(tenant: Tenant, ctx: AdmissionContext<Tenant>): Promise<ValidationResult> {
  const causes: FieldCause[] = [];
  const ns = tenant.spec?.namespace;
  const old = ctx.oldObject?.spec?.namespace;
  if (ctx.operation === "UPDATE" && old !== undefined && ns !== old) {
    causes.push({
      field: "spec.namespace",
      reason: "FieldValueForbidden",
      message: `Forbidden: field is immutable (was "${old}")`,
    });
  }
  if (typeof ns === "string" && RESERVED.test(ns)) {
    causes.push({ field: "spec.namespace", message: `Invalid value: "${ns}": namespace is reserved for the system` });
  }
  // Only a create claims a namespace (it is immutable): checking updates too would block every change,
  // finalizer removal included, of Tenants that already share one (created racing the webhook's cache).
  const claims =
    ctx.operation === "CREATE" && typeof ns === "string"
      ? await ctx.client.list(TenantKind, { index: { name: BY_NAMESPACE, value: ns } })
      : [];
  const other = claims.find((t) => t.metadata.name !== tenant.metadata.name);
  if (other) {
    causes.push({
      field: "spec.namespace",
      message: `Invalid value: "${ns}": namespace "${ns}" is already claimed by Tenant "${other.metadata.name}"; Tenant "${tenant.metadata.name}" cannot claim it too`,
    });
  }
  return { causes };
}

/**
 * Tenant admission: the tenant label on the namespace, an immutable namespace, one Tenant per
 * namespace, and deletion protection.
 */
import type { AdmissionContext, FieldCause, ValidationResult } from "../../core/index.ts";
import { TENANT_LABEL, type Tenant, TenantKind } from "./api.ts";

export const BY_NAMESPACE = "spec.namespace";
/** A Tenant carrying this annotation with value "true" cannot be deleted (its namespace goes with it). */
export const DELETION_PROTECTION = "platform.example.com/deletion-protection";
const RESERVED = /^(kube-.*|default)$/;

export function defaultTenant(tenant: Tenant) {
  const given = tenant.spec.labels?.[TENANT_LABEL];
  tenant.spec.labels = { ...tenant.spec.labels, [TENANT_LABEL]: tenant.metadata.name };
  if (given === undefined || given === tenant.metadata.name) return;
  return { warnings: [`spec.labels["${TENANT_LABEL}"] was "${given}"; set to the Tenant's name "${tenant.metadata.name}"`] };
}

export async function validateTenant(tenant: Tenant, ctx: AdmissionContext<Tenant>): Promise<ValidationResult> {
  if (ctx.operation === "DELETE") {
    if (tenant.metadata.annotations?.[DELETION_PROTECTION] !== "true") return {};
    const field = `metadata.annotations[${DELETION_PROTECTION}]`;
    const message = `Forbidden: Tenant "${tenant.metadata.name}" is protected from deletion; remove the annotation first`;
    return { causes: [{ field, reason: "FieldValueForbidden", message }] };
  }
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

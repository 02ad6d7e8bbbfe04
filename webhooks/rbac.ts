/** What the webhook machinery needs from the API, for the generated RBAC. */
import type { PolicyRule } from "../core/runtime.ts";

/** Cluster-wide: keep the caBundle of kubeplug's own webhook configurations current (self-managed certificates). */
export const WEBHOOK_CLUSTER_RULES: readonly PolicyRule[] = [
  {
    apiGroups: ["admissionregistration.k8s.io"],
    resources: ["mutatingwebhookconfigurations", "validatingwebhookconfigurations"],
    verbs: ["get", "list", "watch", "patch"],
  },
];

/**
 * The Mutating/ValidatingWebhookConfigurations for the registered webhooks: failurePolicy Fail,
 * sideEffects None, a timeout, admissionReviewVersions v1, and the operator's own namespace
 * excluded (by the `kubernetes.io/metadata.name` label, which Kubernetes sets from 1.21 on; on older
 * servers nothing carries it and no namespace is excluded). In a cluster they reach the server
 * through its Service; for a manager on the host, by URL.
 */
import type { WebhookEntry } from "./registry.ts";

/** How the API server reaches the webhook server. */
export type WebhookTarget =
  | { service: { name: string; namespace: string; port: number } }
  /** e.g. `https://127.0.0.1:9443` */
  | { url: string };

/** Options of {@link webhookConfigurations}. */
export interface ConfigurationOptions {
  /** Prefix of the object names: `<name>-mutating`, `<name>-validating`. */
  name: string;
  target: WebhookTarget;
  /** The operator's namespace, excluded from namespaced kinds' webhooks. */
  ownNamespace?: string;
  timeoutSeconds?: number;
  /** PEM CA; omitted when something injects it (the operator itself, or cert-manager). */
  caBundle?: string;
  /** Extra metadata (e.g. cert-manager's inject-ca-from annotation). */
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

/** Builds the two configuration objects (either may hold no webhooks and is then omitted). */
export function webhookConfigurations(entries: readonly WebhookEntry[], o: ConfigurationOptions): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const type of ["mutating", "validating"] as const) {
    const mine = entries.filter((e) => e.type === type);
    if (mine.length === 0) continue;
    out.push({
      apiVersion: "admissionregistration.k8s.io/v1",
      kind: type === "mutating" ? "MutatingWebhookConfiguration" : "ValidatingWebhookConfiguration",
      metadata: {
        name: `${o.name}-${type}`,
        ...(o.labels ? { labels: o.labels } : {}),
        ...(o.annotations ? { annotations: o.annotations } : {}),
      },
      webhooks: mine.map((e) => ({
        name: e.name,
        admissionReviewVersions: ["v1"],
        sideEffects: "None",
        failurePolicy: "Fail",
        timeoutSeconds: o.timeoutSeconds ?? 10,
        ...(type === "mutating" ? { reinvocationPolicy: "Never" } : {}),
        clientConfig: {
          ...("service" in o.target ? { service: { ...o.target.service, path: e.path } } : { url: `${o.target.url}${e.path}` }),
          ...(o.caBundle ? { caBundle: Buffer.from(o.caBundle).toString("base64") } : {}),
        },
        rules: [
          {
            apiGroups: [e.kind.group],
            apiVersions: [e.kind.version],
            operations: [...e.operations],
            resources: [e.kind.plural],
            scope: e.kind.namespaced ? "Namespaced" : "Cluster",
          },
        ],
        ...(e.kind.namespaced && o.ownNamespace
          ? {
              namespaceSelector: {
                matchExpressions: [{ key: "kubernetes.io/metadata.name", operator: "NotIn", values: [o.ownNamespace] }],
              },
            }
          : {}),
      })),
    });
  }
  return out;
}

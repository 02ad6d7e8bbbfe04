/**
 * The Mutating/ValidatingWebhookConfigurations for the registered webhooks: failurePolicy Fail,
 * sideEffects None, a timeout, admissionReviewVersions v1, the operator's own namespace excluded and,
 * when it watches only some namespaces, only those included (by the `kubernetes.io/metadata.name`
 * label, which Kubernetes sets from 1.21 on; on 1.20 nothing carries it, so no namespace is excluded
 * and a watch list admits nothing until the namespaces are given that label). In a cluster they reach the server
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
  /** The namespaces the operator watches (`--namespace`): only these are admitted by it; empty: all. */
  watchNamespaces?: readonly string[];
  timeoutSeconds?: number;
  /** PEM CA; omitted when something injects it (the operator itself, or cert-manager). */
  caBundle?: string;
  /** Extra metadata (e.g. cert-manager's inject-ca-from annotation). */
  annotations?: Record<string, string>;
  labels?: Record<string, string>;
}

/** The label API servers (1.21 and later) set on every namespace to its name; the selectors use it. */
export const NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name";

/**
 * Namespaced kinds: not the operator's own namespace, and only the watched ones when it watches some,
 * so two releases that each watch their own namespaces each admit only those.
 */
function namespaceSelector(e: WebhookEntry, o: ConfigurationOptions): Record<string, unknown> {
  if (!e.kind.namespaced) return {};
  const expressions = [
    ...(o.ownNamespace ? [{ key: NAMESPACE_NAME_LABEL, operator: "NotIn", values: [o.ownNamespace] }] : []),
    ...(o.watchNamespaces?.length ? [{ key: NAMESPACE_NAME_LABEL, operator: "In", values: [...o.watchNamespaces] }] : []),
  ];
  return expressions.length ? { namespaceSelector: { matchExpressions: expressions } } : {};
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
        ...namespaceSelector(e, o),
      })),
    });
  }
  return out;
}

/** Applies the plugins' CRDs (server-side apply) and waits until they are served: `run --install` and the demo. */
import {
  type CustomKind,
  CustomResourceDefinitionKind,
  crdOf,
  isNotFound,
  MutatingWebhookConfigurationKind,
  NamespaceKind,
  objectPath,
  PatchType,
  type Plugin,
  type RestClient,
  sleep,
  ValidatingWebhookConfigurationKind,
} from "../core/runtime.ts";
import { NAMESPACE_NAME_LABEL, type Webhooks, webhookConfigurations } from "../webhooks/index.ts";

function customKinds(plugins: readonly Plugin[]): CustomKind[] {
  return plugins.flatMap((p) => p.kinds).filter((k): k is CustomKind => "definition" in k);
}

/** Applies every CRD of `plugins`; resolves when each is Established. */
export async function installCrds(rest: RestClient, plugins: readonly Plugin[], timeoutMs = 30_000): Promise<string[]> {
  const names: string[] = [];
  for (const kind of customKinds(plugins)) {
    const crd = crdOf(kind);
    const name = (crd.metadata as { name: string }).name;
    await rest.request("PATCH", objectPath(CustomResourceDefinitionKind, name), {
      body: crd,
      contentType: PatchType.apply,
      query: { fieldManager: "kubeplug", force: true },
    });
    names.push(name);
  }
  const deadline = Date.now() + timeoutMs;
  for (const name of names) {
    for (;;) {
      const got = await rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        "GET",
        objectPath(CustomResourceDefinitionKind, name),
      );
      if (got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} was not established within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return names;
}

/**
 * Applies the webhook configurations in URL mode (a manager running on the host, e.g.
 * `https://127.0.0.1:9443`), with the server's CA, once the server is serving.
 */
export async function installWebhookConfigurations(
  rest: RestClient,
  webhooks: Webhooks,
  options: { url: string; name: string; ownNamespace: string; watchNamespaces?: readonly string[]; signal: AbortSignal },
): Promise<string[]> {
  const { server, certs, registry } = webhooks;
  if (!server || !certs) return [];
  while (!server.serving && !options.signal.aborted) await sleep(100, options.signal);
  // Never register webhooks nobody serves: with failurePolicy Fail they would block every write.
  if (options.signal.aborted || !server.serving) return [];
  const ca = certs.current()?.ca;
  const objects = webhookConfigurations(registry.entries(), {
    name: options.name,
    target: { url: options.url },
    ownNamespace: options.ownNamespace,
    ...(options.watchNamespaces ? { watchNamespaces: options.watchNamespaces } : {}),
    ...(ca ? { caBundle: ca } : {}),
  });
  // The configurations select watched namespaces by the kubernetes.io/metadata.name label, which
  // API servers set on every namespace only from 1.21 on: on an older one (the local control plane
  // is 1.20) the watched namespaces get it here, or no object of theirs would reach the webhooks.
  for (const ns of options.watchNamespaces ?? []) {
    await rest
      .request("PATCH", objectPath(NamespaceKind, ns), {
        body: { metadata: { labels: { [NAMESPACE_NAME_LABEL]: ns } } },
        contentType: PatchType.merge,
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
  }
  const names: string[] = [];
  for (const obj of objects) {
    const meta = obj.metadata as { name: string };
    const kind =
      obj.kind === "MutatingWebhookConfiguration" ? MutatingWebhookConfigurationKind : ValidatingWebhookConfigurationKind;
    await rest.request("PATCH", objectPath(kind, meta.name), {
      body: obj,
      contentType: PatchType.apply,
      query: { fieldManager: "kubeplug-install", force: true },
    });
    names.push(`${obj.kind}/${meta.name}`);
  }
  return names;
}

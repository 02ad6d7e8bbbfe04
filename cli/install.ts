/** Applies the plugins' CRDs (server-side apply) and waits until they are served: `run --install` and the demo. */
import { type CustomKind, crdOf, PatchType, type Plugin, type RestClient } from "../core/index.ts";

function customKinds(plugins: readonly Plugin[]): CustomKind[] {
  return plugins.flatMap((p) => p.kinds).filter((k): k is CustomKind => "definition" in k);
}

/** Applies every CRD of `plugins`; resolves when each is Established. */
export async function installCrds(rest: RestClient, plugins: readonly Plugin[], timeoutMs = 30_000): Promise<string[]> {
  const names: string[] = [];
  for (const kind of customKinds(plugins)) {
    const crd = crdOf(kind);
    const name = (crd.metadata as { name: string }).name;
    await rest.request("PATCH", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`, {
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
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${name}`,
      );
      if (got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True")) break;
      if (Date.now() > deadline) throw new Error(`CRD ${name} was not established within ${timeoutMs / 1000} s`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  return names;
}

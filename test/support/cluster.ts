/** Test helpers on top of the local control plane. */
import type { KubeConfig } from "@kubernetes/client-node";
import { isAlreadyExists, RestClient } from "../../core/index.ts";
import { waitFor } from "./wait.ts";

/** Installs (or keeps) a CRD and waits until it is Established and its endpoint serves. */
export async function installCrd(
  kc: KubeConfig,
  crd: { metadata: { name: string }; spec: { group: string; versions: { name: string }[]; names: { plural: string } } },
): Promise<void> {
  const rest = await RestClient.create(kc);
  try {
    try {
      await rest.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", { body: crd });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    await waitFor(`CRD ${crd.metadata.name} to be established`, async () => {
      const got = await rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        "GET",
        `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${crd.metadata.name}`,
      );
      return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
    const version = crd.spec.versions[0]?.name as string;
    await waitFor(`${crd.spec.names.plural} to be served`, async () => {
      await rest.request("GET", `/apis/${crd.spec.group}/${version}/${crd.spec.names.plural}`);
      return true;
    });
  } finally {
    await rest.close();
  }
}

/** Creates a namespace (ignoring AlreadyExists). */
export async function createNamespace(kc: KubeConfig, name: string): Promise<void> {
  const rest = await RestClient.create(kc);
  try {
    await rest.request("POST", "/api/v1/namespaces", { body: { apiVersion: "v1", kind: "Namespace", metadata: { name } } });
  } catch (err) {
    if (!isAlreadyExists(err)) throw err;
  } finally {
    await rest.close();
  }
}

/** Fetches text from a local HTTP endpoint (metrics, health). */
export async function fetchText(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

/** Reads one sample from a Prometheus text exposition: sum of all series of `name` whose labels include `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split("\n")) {
    if (!line.startsWith(`${name}{`) && !line.startsWith(`${name} `)) continue;
    const labelText = line.slice(name.length).startsWith("{") ? line.slice(name.length + 1, line.indexOf("}")) : "";
    const have = Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1], m[2]]));
    if (Object.entries(labels).every(([k, v]) => have[k] === v)) sum += Number(line.slice(line.lastIndexOf(" ") + 1));
  }
  return sum;
}

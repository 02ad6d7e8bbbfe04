/** Test helpers on top of the local control plane. */
import type { KubeConfig } from "@kubernetes/client-node";
import {
  CustomResourceDefinitionKind,
  collectionPath,
  isAlreadyExists,
  kindOf,
  NamespaceKind,
  objectPath,
  RestClient,
} from "../../core/runtime.ts";
import { freePort } from "../controlplane/index.ts";
import { waitFor } from "./wait.ts";

/** Installs (or keeps) a CRD and waits until it is Established and its endpoint serves. */
export async function installCrd(
  kc: KubeConfig,
  crd: {
    metadata: { name: string };
    spec: { group: string; scope: string; versions: { name: string }[]; names: { plural: string; kind: string } };
  },
): Promise<void> {
  const rest = await RestClient.create(kc);
  try {
    try {
      await rest.request("POST", collectionPath(CustomResourceDefinitionKind), { body: crd });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
    await waitFor(`CRD ${crd.metadata.name} to be established`, async () => {
      const got = await rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>(
        "GET",
        objectPath(CustomResourceDefinitionKind, crd.metadata.name),
      );
      return got.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
    const kind = kindOf({
      group: crd.spec.group,
      version: crd.spec.versions[0]?.name as string,
      kind: crd.spec.names.kind,
      plural: crd.spec.names.plural,
      namespaced: crd.spec.scope === "Namespaced",
    });
    await waitFor(`${crd.spec.names.plural} to be served`, async () => {
      await rest.request("GET", collectionPath(kind));
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
    await rest.request("POST", collectionPath(NamespaceKind), {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name } },
    });
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

/** Free ports on 127.0.0.1 for a manager's metrics, health and webhook listeners, and the flags that bind them. */
export async function localListeners(): Promise<{
  metricsPort: number;
  healthPort: number;
  webhookPort: number;
  flags: string[];
}> {
  const [metricsPort, healthPort, webhookPort] = [await freePort(), await freePort(), await freePort()];
  return {
    metricsPort,
    healthPort,
    webhookPort,
    flags: [
      "--metrics-bind-address",
      `127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address",
      `127.0.0.1:${healthPort}`,
      "--webhook-bind-address",
      `127.0.0.1:${webhookPort}`,
    ],
  };
}

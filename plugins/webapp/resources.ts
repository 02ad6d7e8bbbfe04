/**
 * The children a WebApp wants, and how to put a live child back to that without touching fields
 * other controllers or the API server own (defaults, allocated node ports, status).
 */
import { controllerReference, type Deployment, type Service } from "../../core/index.ts";
import { type WebApp, WebAppKind } from "./api.ts";

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "kubeplug" } as const;
const CONTAINER = "webapp";

/** Labels of the WebApp's children: `app: <name>` and `app.kubernetes.io/managed-by: kubeplug`. */
export function labelsOf(app: WebApp): Record<string, string> {
  return { app: app.metadata.name as string, ...MANAGED_BY };
}

/** The Deployment a WebApp wants. */
export function desiredDeployment(app: WebApp): Deployment {
  const name = app.metadata.name as string;
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: {
      name,
      namespace: app.metadata.namespace,
      labels: labelsOf(app),
      ownerReferences: [controllerReference(app, WebAppKind)],
    },
    spec: {
      replicas: app.spec.replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: labelsOf(app) },
        spec: {
          containers: [
            { name: CONTAINER, image: app.spec.image, ports: [{ name: "http", containerPort: app.spec.port, protocol: "TCP" }] },
          ],
        },
      },
    },
  };
}

/** The Service a WebApp wants: port 80 to the WebApp's port. */
export function desiredService(app: WebApp): Service {
  const name = app.metadata.name as string;
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: {
      name,
      namespace: app.metadata.namespace,
      labels: labelsOf(app),
      ownerReferences: [controllerReference(app, WebAppKind)],
    },
    spec: {
      type: app.spec.serviceType,
      selector: { app: name },
      ports: [{ name: "http", port: 80, targetPort: app.spec.port as unknown as never, protocol: "TCP" }],
    },
  };
}

const sameJson = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b);

/** Labels of `live` with ours put back. */
function mergedLabels(live: Record<string, string> | undefined, ours: Record<string, string>): Record<string, string> {
  return { ...live, ...ours };
}

function labelsDrifted(live: Record<string, string> | undefined, ours: Record<string, string>): boolean {
  return Object.entries(ours).some(([k, v]) => live?.[k] !== v);
}

function ownerDrifted(live: Deployment | Service, want: Deployment | Service): boolean {
  const ref = want.metadata.ownerReferences?.[0];
  const liveRef = live.metadata.ownerReferences?.find((r) => r.controller);
  return !ref || liveRef?.uid !== ref.uid;
}

/**
 * The live Deployment with the WebApp's fields put back, or undefined when nothing drifted.
 * Fields we do not set (strategy, defaults, annotations of others) are kept.
 */
export function repairDeployment(live: Deployment, want: Deployment): Deployment | undefined {
  const spec = live.spec;
  const wantSpec = want.spec as NonNullable<Deployment["spec"]>;
  const wantContainer = wantSpec.template.spec?.containers[0] as NonNullable<typeof wantSpec.template.spec>["containers"][number];
  const containers = spec?.template.spec?.containers ?? [];
  const liveContainer = containers.find((c) => c.name === CONTAINER);
  const drifted =
    labelsDrifted(live.metadata.labels, want.metadata.labels ?? {}) ||
    ownerDrifted(live, want) ||
    spec?.replicas !== wantSpec.replicas ||
    !sameJson(spec?.selector, wantSpec.selector) ||
    labelsDrifted(spec?.template.metadata?.labels, wantSpec.template.metadata?.labels ?? {}) ||
    containers.length !== 1 ||
    !liveContainer ||
    liveContainer.image !== wantContainer.image ||
    !sameJson(
      liveContainer.ports?.map((p) => [p.name, p.containerPort, p.protocol]),
      wantContainer.ports?.map((p) => [p.name, p.containerPort, p.protocol]),
    );
  if (!drifted) return undefined;
  const repaired = structuredClone(live) as Deployment;
  repaired.metadata.labels = mergedLabels(live.metadata.labels, want.metadata.labels ?? {});
  repaired.metadata.ownerReferences = want.metadata.ownerReferences;
  const rs = repaired.spec as NonNullable<Deployment["spec"]>;
  rs.replicas = wantSpec.replicas;
  rs.selector = wantSpec.selector;
  rs.template.metadata = {
    ...rs.template.metadata,
    labels: mergedLabels(rs.template.metadata?.labels, wantSpec.template.metadata?.labels ?? {}),
  };
  const podSpec = rs.template.spec ?? { containers: [] };
  podSpec.containers = [{ ...(liveContainer ? structuredClone(liveContainer) : {}), ...wantContainer }];
  rs.template.spec = podSpec;
  delete repaired.status;
  return repaired;
}

/**
 * The live Service with the WebApp's fields put back, or undefined when nothing drifted. Node ports
 * the API server allocated are kept while the type is NodePort and dropped for ClusterIP (the API
 * server refuses node ports on a ClusterIP Service).
 */
export function repairService(live: Service, want: Service): Service | undefined {
  const spec = live.spec ?? {};
  const wantSpec = want.spec as NonNullable<Service["spec"]>;
  const wantPort = wantSpec.ports?.[0] as NonNullable<Service["spec"]>["ports"] extends (infer P)[] | undefined ? P : never;
  const livePorts = spec.ports ?? [];
  const livePort = livePorts[0];
  const drifted =
    labelsDrifted(live.metadata.labels, want.metadata.labels ?? {}) ||
    ownerDrifted(live, want) ||
    spec.type !== wantSpec.type ||
    !sameJson(spec.selector, wantSpec.selector) ||
    livePorts.length !== 1 ||
    livePort?.name !== wantPort.name ||
    livePort?.port !== wantPort.port ||
    String(livePort?.targetPort) !== String(wantPort.targetPort) ||
    livePort?.protocol !== wantPort.protocol ||
    (wantSpec.type === "ClusterIP" && livePort?.nodePort !== undefined);
  if (!drifted) return undefined;
  const repaired = structuredClone(live) as Service;
  repaired.metadata.labels = mergedLabels(live.metadata.labels, want.metadata.labels ?? {});
  repaired.metadata.ownerReferences = want.metadata.ownerReferences;
  const rs = repaired.spec as NonNullable<Service["spec"]>;
  rs.type = wantSpec.type;
  rs.selector = wantSpec.selector;
  const keepNodePort = wantSpec.type === "NodePort" && livePort?.nodePort !== undefined ? { nodePort: livePort.nodePort } : {};
  rs.ports = [{ ...wantPort, ...keepNodePort }];
  if (wantSpec.type === "ClusterIP") delete rs.externalTrafficPolicy;
  delete repaired.status;
  return repaired;
}

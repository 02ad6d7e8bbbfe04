/**
 * The children a WebApp wants, as mutations of the live object (see createOrUpdate): they set the
 * WebApp's fields and keep what the API server or others own (defaults, allocated node ports).
 */
import { controllerReference, type Deployment, type Service } from "../../core/index.ts";
import { type WebApp, WebAppKind } from "./api.ts";

export const MANAGED_BY = { "app.kubernetes.io/managed-by": "kubeplug" } as const;
const CONTAINER = "webapp";

/** Labels of the WebApp's children: `app: <name>` and `app.kubernetes.io/managed-by: kubeplug`. */
export function labelsOf(app: WebApp): Record<string, string> {
  return { app: app.metadata.name as string, ...MANAGED_BY };
}

/** Sets the Deployment a WebApp wants: replicas, selector on `app`, one container with the image and port. */
export function deploymentFor(app: WebApp) {
  return (d: Deployment): void => {
    d.metadata.labels = { ...d.metadata.labels, ...labelsOf(app) };
    d.metadata.ownerReferences = [controllerReference(app, WebAppKind)];
    const spec = d.spec ?? { selector: {}, template: {} };
    spec.replicas = app.spec.replicas;
    spec.selector = { matchLabels: { app: app.metadata.name as string } };
    spec.template.metadata = { ...spec.template.metadata, labels: { ...spec.template.metadata?.labels, ...labelsOf(app) } };
    const pod = spec.template.spec ?? { containers: [] };
    const live = pod.containers.find((c) => c.name === CONTAINER);
    pod.containers = [
      {
        ...live,
        name: CONTAINER,
        image: app.spec.image,
        ports: [{ name: "http", containerPort: app.spec.port, protocol: "TCP" }],
      },
    ];
    spec.template.spec = pod;
    d.spec = spec;
  };
}

/**
 * Sets the Service a WebApp wants: port 80 to the WebApp's port, the same selector, its type. Node
 * ports the API server allocated are kept while the type is NodePort and dropped for ClusterIP (the
 * API server refuses node ports on a ClusterIP Service).
 */
export function serviceFor(app: WebApp) {
  return (s: Service): void => {
    s.metadata.labels = { ...s.metadata.labels, ...labelsOf(app) };
    s.metadata.ownerReferences = [controllerReference(app, WebAppKind)];
    const spec = s.spec ?? {};
    const nodePort = spec.ports?.[0]?.nodePort;
    spec.type = app.spec.serviceType;
    spec.selector = { app: app.metadata.name as string };
    spec.ports = [
      {
        name: "http",
        port: 80,
        targetPort: app.spec.port as never,
        protocol: "TCP",
        ...(app.spec.serviceType === "NodePort" && nodePort ? { nodePort } : {}),
      },
    ];
    if (app.spec.serviceType === "ClusterIP") delete spec.externalTrafficPolicy;
    s.spec = spec;
  };
}

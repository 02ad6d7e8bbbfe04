/**
 * The Helm chart against a real control plane: lint, schema errors that name the bad value,
 * `helm install`, the operator running on the host with nothing but the chart's ServiceAccount token
 * (so the generated RBAC is shown to be enough, and no more), `helm upgrade`, `helm uninstall`, and
 * every rendered variant accepted by the API server (server-side dry run) with the Deployment's
 * security settings checked. There is no kubelet, so the chart's pods never run; the operator runs as
 * a process here with the Deployment's own arguments, and the webhook configurations are pointed at it.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiError, type KubeObject, RestClient } from "../../core/runtime.ts";
import {
  type ControlPlane,
  ensureTools,
  freePort,
  KUBERNETES_VERSION,
  type PodReadiness,
  startControlPlane,
  startPodReadiness,
  type Tools,
} from "../controlplane/index.ts";
import {
  assertForbidden,
  cleanEnv,
  flag,
  type HostOperator,
  pointWebhooksAtHost,
  readObject,
  runOperatorAsDeployment,
  serviceAccountKubeconfig,
  webhookCaInjected,
} from "../support/chart-operator.ts";
import { createNamespace, fetchText, installCrd } from "../support/cluster.ts";
import { type Run, exec as run } from "../support/exec.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = join(import.meta.dirname, "../..");
const CHART = join(ROOT, "charts/kubeplug");
const CHART_CRDS = join(CHART, "crds");
const RELEASE = "kp";
const NS = "kubeplug-system";
/** The chart's `kubeplug.fullname` for release `kp`. */
const FULL = "kp-kubeplug";
const SA_USER = `system:serviceaccount:${NS}:${FULL}`;
const APPS = "chart-apps";
const WEBAPP_CRD = "webapps.webapp.example.com";
const HOSTNAME = `${FULL}-on-host`;

let cp: ControlPlane;
let tools: Tools;
let rest: RestClient;
let work: string;

/** Every child this file started; `after` (and, as a last resort, process exit) kills the survivors. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

before(async () => {
  work = mkdtempSync(join(tmpdir(), "kubeplug-chart-test-"));
  [cp, tools] = await Promise.all([startControlPlane(), ensureTools()]);
  rest = await RestClient.create(cp.kubeConfig);
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rest?.close();
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---- helpers ----------------------------------------------------------------------------------

/** Runs a command to its end; `input` goes to its stdin. */
function exec(command: string, args: string[], options: { input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<Run> {
  return run(command, args, { ...options, env: options.env ?? cleanEnv(), track: children });
}

/** Helm with its cache, config and data in the test's directory, talking to the test control plane. */
function helm(args: string[]): Promise<Run> {
  const env = cleanEnv({
    HELM_CACHE_HOME: join(work, "helm/cache"),
    HELM_CONFIG_HOME: join(work, "helm/config"),
    HELM_DATA_HOME: join(work, "helm/data"),
  });
  return exec(tools.helm, [...args, "--kubeconfig", cp.kubeconfigPath], { env });
}

async function helmOk(args: string[]): Promise<string> {
  const run = await helm(args);
  assert.equal(run.code, 0, `helm ${args.join(" ")} failed:\n${run.stderr}`);
  return run.stdout;
}

async function kubectlOk(args: string[], input?: string): Promise<string> {
  const run = await exec(
    tools.kubectl,
    ["--kubeconfig", cp.kubeconfigPath, "--cache-dir", join(work, "kubectl-cache"), ...args],
    input === undefined ? {} : { input },
  );
  assert.equal(run.code, 0, `kubectl ${args.join(" ")} failed:\n${run.stderr}`);
  return run.stdout;
}

/** An object read from the API (not a cache), or undefined when it does not exist. */
function read<T = KubeObject>(path: string, client: RestClient = rest): Promise<T | undefined> {
  return readObject<T>(client, path);
}

/** A CRD that accepts anything: stands in for cert-manager's and the Prometheus Operator's kinds. */
function looseCrd(group: string, kind: string, plural: string) {
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${plural}.${group}` },
    spec: {
      group,
      scope: "Namespaced",
      names: { kind, plural, singular: kind.toLowerCase(), listKind: `${kind}List` },
      versions: [
        {
          name: "v1",
          served: true,
          storage: true,
          schema: { openAPIV3Schema: { type: "object", "x-kubernetes-preserve-unknown-fields": true } },
        },
      ],
    },
  };
}

interface Container {
  name: string;
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
  ports?: { name?: string; containerPort: number }[];
  securityContext?: {
    runAsNonRoot?: boolean;
    readOnlyRootFilesystem?: boolean;
    allowPrivilegeEscalation?: boolean;
    capabilities?: { drop?: string[]; add?: string[] };
    seccompProfile?: { type: string };
    privileged?: boolean;
  };
  livenessProbe?: { httpGet?: { path: string; port: string | number } };
  readinessProbe?: { httpGet?: { path: string; port: string | number } };
}

interface DeploymentObject extends KubeObject {
  spec: {
    replicas?: number;
    template: {
      spec: {
        serviceAccountName?: string;
        terminationGracePeriodSeconds?: number;
        securityContext?: { runAsNonRoot?: boolean; runAsUser?: number; seccompProfile?: { type: string } };
        containers: Container[];
      };
    };
  };
  status?: { availableReplicas?: number };
}

interface PolicyRuleObject {
  apiGroups?: string[];
  resources?: string[];
  verbs?: string[];
  resourceNames?: string[];
  nonResourceURLs?: string[];
}

interface WebAppObject extends KubeObject {
  spec: { image: string; replicas?: number };
  status?: { availableReplicas?: number };
}

/** Asserts the Deployment's pod runs locked down: non-root, read-only, no capabilities, probes, grace. */
function assertHardened(deployment: DeploymentObject, what: string): void {
  const pod = deployment.spec.template.spec;
  const [manager] = pod.containers;
  assert.ok(manager, `${what}: the Deployment has a container`);
  const sc = manager.securityContext ?? {};
  assert.equal(pod.securityContext?.runAsNonRoot ?? sc.runAsNonRoot, true, `${what}: runAsNonRoot`);
  assert.equal(sc.readOnlyRootFilesystem, true, `${what}: readOnlyRootFilesystem`);
  assert.equal(sc.allowPrivilegeEscalation, false, `${what}: allowPrivilegeEscalation false`);
  assert.notEqual(sc.privileged, true, `${what}: not privileged`);
  assert.deepEqual(sc.capabilities?.drop, ["ALL"], `${what}: capabilities drop ALL`);
  assert.equal(sc.capabilities?.add, undefined, `${what}: no capabilities added`);
  assert.equal(sc.seccompProfile?.type ?? pod.securityContext?.seccompProfile?.type, "RuntimeDefault", `${what}: seccomp`);
  // The probes reach the port the manager serves health on.
  const healthPort = manager.ports?.find((p) => p.name === "health")?.containerPort;
  const healthAddress = flag(manager.args ?? [], "health-probe-bind-address");
  assert.equal(healthAddress, `:${healthPort}`, `${what}: --health-probe-bind-address matches the health port`);
  assert.deepEqual(manager.livenessProbe?.httpGet, { path: "/healthz", port: "health", scheme: "HTTP" }, `${what}: liveness`);
  assert.deepEqual(manager.readinessProbe?.httpGet, { path: "/readyz", port: "health", scheme: "HTTP" }, `${what}: readiness`);
  // Longer than the manager's graceful shutdown (30 s), so in-flight reconciles finish before SIGKILL.
  assert.ok((pod.terminationGracePeriodSeconds ?? 30) > 30, `${what}: terminationGracePeriodSeconds > 30`);
}

/** Asserts no rule of a Role/ClusterRole grants with a wildcard. */
function assertNoWildcards(role: KubeObject & { rules?: PolicyRuleObject[] }, what: string): void {
  for (const rule of role.rules ?? []) {
    for (const field of ["apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"] as const) {
      for (const value of rule[field] ?? []) {
        assert.ok(!value.includes("*"), `${what}: ${role.kind} ${role.metadata.name} has "${value}" in ${field}`);
      }
    }
  }
}

// ---- tests ------------------------------------------------------------------------------------

describe("the kubeplug chart", () => {
  it("passes helm lint", async () => {
    const out = await helmOk(["lint", CHART]);
    assert.match(out, /1 chart\(s\) linted, 0 chart\(s\) failed/);
  });

  it("rejects bad values with a message naming the value", async () => {
    const replicas = await helm(["template", RELEASE, CHART, "--set", "replicas=two"]);
    assert.notEqual(replicas.code, 0, "replicas=two must fail");
    assert.match(replicas.stderr, /replicas/, replicas.stderr);
    assert.match(replicas.stderr, /integer/, replicas.stderr);

    const plugins = await helm(["template", RELEASE, CHART, "--set", "plugins={webapp,nope}"]);
    assert.notEqual(plugins.code, 0, "an unknown plugin must fail");
    assert.match(plugins.stderr, /plugins/, plugins.stderr);
    assert.match(plugins.stderr, /webapp/, `${plugins.stderr}\n(the message should say what is allowed)`);
  });

  it("installs the release: CRD, ServiceAccount, RBAC, Deployment, Service and webhook configurations", async () => {
    assert.equal(await read(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${WEBAPP_CRD}`), undefined);
    await helmOk(["install", RELEASE, CHART, "-n", NS, "--create-namespace"]);
    const expected = [
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${WEBAPP_CRD}`,
      `/api/v1/namespaces/${NS}/serviceaccounts/${FULL}`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-manager`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-cluster`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${FULL}-manager`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${FULL}-cluster`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/${FULL}-leader-and-certs`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/${FULL}-leader-and-certs`,
      `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`,
      `/api/v1/namespaces/${NS}/services/${FULL}-webhook`,
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
    ];
    for (const path of expected) assert.ok(await read(path), `helm install created ${path}`);
    const deployment = (await read<DeploymentObject>(`/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`)) as DeploymentObject;
    assert.equal(deployment.spec.template.spec.serviceAccountName, FULL);
    assert.equal(deployment.spec.replicas, 2);
    const status = await helmOk(["status", RELEASE, "-n", NS]);
    assert.match(status, /STATUS: deployed/);
  });

  describe("the operator on the host, as the chart's ServiceAccount", () => {
    let operator: HostOperator | undefined;
    let saRest: RestClient;
    let readiness: PodReadiness | undefined;
    let healthUrl: string;
    let restoreWebhooks: (() => Promise<void>) | undefined;
    const configPaths = [
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
    ];

    before(async () => {
      // The token controller (Kubernetes 1.20) gives the ServiceAccount a token Secret.
      const sa = await serviceAccountKubeconfig(rest, cp, NS, FULL, work);
      assert.equal(sa.user, SA_USER);
      saRest = sa.rest;

      // The API server cannot reach the in-cluster Service: point the chart's webhooks at the host.
      const [webhookPort, metricsPort, healthPort] = [await freePort(), await freePort(), await freePort()];
      restoreWebhooks = await pointWebhooksAtHost(rest, configPaths, webhookPort, `${FULL}-webhook`);

      // Exactly the Deployment's arguments (so they cannot drift), with the listeners on loopback.
      const deployment = (await read<DeploymentObject>(`/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`)) as DeploymentObject;
      healthUrl = `http://127.0.0.1:${healthPort}`;
      const running = runOperatorAsDeployment({
        deployment,
        namespace: NS,
        replace: {
          "webhook-bind-address": `127.0.0.1:${webhookPort}`,
          "metrics-bind-address": `127.0.0.1:${metricsPort}`,
          "health-probe-bind-address": `127.0.0.1:${healthPort}`,
        },
        extraArgs: ["--webhook-hosts=127.0.0.1", `--kubeconfig=${sa.kubeconfigPath}`],
        command: join(ROOT, "bin/kubeplug"),
        env: cleanEnv({ HOSTNAME }),
        children,
      });
      operator = running;
      await running.running("the operator to be ready", async () => (await fetchText(`${healthUrl}/readyz`)).status === 200);
      await running.running(
        "the operator to inject its CA into both webhook configurations",
        webhookCaInjected(rest, `/api/v1/namespaces/${NS}/secrets/${FULL}-webhook-tls`, configPaths),
      );
      await createNamespace(cp.kubeConfig, APPS);
      readiness = startPodReadiness(cp.kubeConfig, { namespace: APPS });
    });

    after(async () => {
      await readiness?.stop();
      if (operator) await operator.stop("SIGKILL");
      await saRest?.close();
      // Back to the chart's own clientConfig, so helm upgrade finds what it rendered.
      await restoreWebhooks?.();
    });

    it("holds the leader Lease and the webhook certificate it issued as the ServiceAccount", async () => {
      const lease = await read<KubeObject & { spec: { holderIdentity?: string } }>(
        `/apis/coordination.k8s.io/v1/namespaces/${NS}/leases/${FULL}-leader`,
      );
      assert.ok(lease?.spec.holderIdentity?.startsWith(HOSTNAME), `the operator holds the Lease: ${JSON.stringify(lease?.spec)}`);
      const tls = await read<KubeObject & { type: string }>(`/api/v1/namespaces/${NS}/secrets/${FULL}-webhook-tls`);
      assert.equal(tls?.type, "kubernetes.io/tls");
    });

    it("reconciles a WebApp: Deployment and Service owned by it, a deleted Deployment comes back, status follows pods", async () => {
      const app = await rest.request<WebAppObject>("POST", `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`, {
        body: {
          apiVersion: "webapp.example.com/v1",
          kind: "WebApp",
          metadata: { name: "hello", namespace: APPS },
          spec: { image: "nginx:1.27", replicas: 2, port: 80 },
        },
      });
      const ownedByApp = (child: KubeObject | undefined) =>
        child?.metadata.ownerReferences?.some(
          (r) => r.kind === "WebApp" && r.name === "hello" && r.uid === app.metadata.uid && r.controller === true,
        );
      const deployment = await waitFor("the WebApp's Deployment", async () => {
        const d = await read<DeploymentObject>(`/apis/apps/v1/namespaces/${APPS}/deployments/hello`);
        return ownedByApp(d) ? d : undefined;
      });
      assert.equal(deployment.spec.replicas, 2);
      await waitFor("the WebApp's Service", async () => ownedByApp(await read(`/api/v1/namespaces/${APPS}/services/hello`)));

      await rest.request("DELETE", `/apis/apps/v1/namespaces/${APPS}/deployments/hello`);
      await waitFor("the Deployment to be recreated", async () => {
        const d = await read<DeploymentObject>(`/apis/apps/v1/namespaces/${APPS}/deployments/hello`);
        return d && d.metadata.uid !== deployment.metadata.uid && ownedByApp(d);
      });

      await waitFor(
        "status.availableReplicas 2",
        async () =>
          (await read<WebAppObject>(`/apis/webapp.example.com/v1/namespaces/${APPS}/webapps/hello`))?.status
            ?.availableReplicas === 2,
        { timeoutMs: 60_000 },
      );
    });

    it("denies an invalid WebApp through its admission webhook", async () => {
      await assert.rejects(
        rest.request("POST", `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`, {
          body: {
            apiVersion: "webapp.example.com/v1",
            kind: "WebApp",
            metadata: { name: "too-big", namespace: APPS },
            spec: { image: "nginx:1.27", replicas: 11 },
          },
        }),
        (err: unknown) => {
          assert.ok(err instanceof ApiError, String(err));
          assert.match(err.message, /admission webhook "[mv]webapp\.webapp\.example\.com" denied the request/);
          assert.match(err.message, /spec\.replicas/);
          return true;
        },
      );
    });

    it("runs the finalizer when the WebApp is deleted, and the WebApp goes away", async () => {
      const path = `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps/hello`;
      const app = (await read<WebAppObject>(path)) as WebAppObject;
      assert.deepEqual(app.metadata.finalizers, ["webapp.example.com/finalizer"]);
      await rest.request("DELETE", path);
      await waitFor("the WebApp to be gone", async () => (await read(path)) === undefined, { timeoutMs: 60_000 });
      // The cleanup scaled the Deployment to zero (unless garbage collection removed it already).
      const d = await read<DeploymentObject>(`/apis/apps/v1/namespaces/${APPS}/deployments/hello`);
      assert.ok(d === undefined || d.spec.replicas === 0, `Deployment after cleanup: ${JSON.stringify(d?.spec.replicas)}`);
      // Its events were recorded by this process, under the ServiceAccount.
      await waitFor("the Finalized event", async () => {
        const events = await rest.request<{ items: (KubeObject & { reason?: string; source?: { host?: string } })[] }>(
          "GET",
          `/api/v1/namespaces/${APPS}/events`,
          { query: { fieldSelector: `involvedObject.uid=${app.metadata.uid}` } },
        );
        return events.items.some((e) => e.reason === "Finalized" && e.source?.host === HOSTNAME);
      });
    });

    it("is refused what the generated RBAC does not grant", async () => {
      const forbidden = (method: string, path: string, body?: unknown) => assertForbidden(saRest, SA_USER, method, path, body);
      // The Secret it manages is readable to it (the positive control for the refusals below).
      await saRest.request("GET", `/api/v1/namespaces/${NS}/secrets/${FULL}-webhook-tls`);
      await forbidden("GET", "/api/v1/namespaces/kube-system/secrets");
      await forbidden("GET", `/api/v1/namespaces/${APPS}/secrets`);
      await forbidden("GET", "/api/v1/secrets");
      await forbidden("POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {
        apiVersion: "rbac.authorization.k8s.io/v1",
        kind: "ClusterRole",
        metadata: { name: "kubeplug-escalation" },
        rules: [{ apiGroups: [""], resources: ["secrets"], verbs: ["get"] }],
      });
      await forbidden("PATCH", `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-manager`, []);
    });

    it("exits 0 on SIGTERM", async () => {
      assert.ok(operator, "the operator was started");
      const exit = await operator.stop("SIGTERM");
      assert.deepEqual(exit, { code: 0, signal: null }, operator.tail());
    });
  });

  it("helm upgrade changes the Deployment", async () => {
    const path = `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`;
    const before = (await read<DeploymentObject>(path)) as DeploymentObject;
    assert.equal(flag(before.spec.template.spec.containers[0]?.args ?? [], "log-level"), "info");
    await helmOk(["upgrade", RELEASE, CHART, "-n", NS, "--set", "logLevel=debug", "--set", "replicas=3"]);
    const upgraded = (await read<DeploymentObject>(path)) as DeploymentObject;
    assert.equal(upgraded.spec.replicas, 3);
    assert.equal(flag(upgraded.spec.template.spec.containers[0]?.args ?? [], "log-level"), "debug");
    assert.ok((upgraded.metadata.generation ?? 0) > (before.metadata.generation ?? 0), "a new generation");
    assert.match(await helmOk(["history", RELEASE, "-n", NS]), /upgrade complete/i);
  });

  it("helm uninstall removes the release's objects and keeps the CRD", async () => {
    await helmOk(["uninstall", RELEASE, "-n", NS]);
    const gone = [
      `/api/v1/namespaces/${NS}/serviceaccounts/${FULL}`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-manager`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-cluster`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${FULL}-manager`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${FULL}-cluster`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/roles/${FULL}-leader-and-certs`,
      `/apis/rbac.authorization.k8s.io/v1/namespaces/${NS}/rolebindings/${FULL}-leader-and-certs`,
      `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`,
      `/api/v1/namespaces/${NS}/services/${FULL}-webhook`,
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
    ];
    for (const path of gone) await waitFor(`${path} to be deleted`, async () => (await read(path)) === undefined);
    const crd = await read<KubeObject>(`/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${WEBAPP_CRD}`);
    assert.ok(crd, "the CRD stays (Helm never deletes crds/)");
    await rest.request("GET", "/apis/webapp.example.com/v1/webapps");
  });

  it("renders default values and each variant into objects the API server accepts (server dry run), locked down", async () => {
    // Kinds the variants use but this control plane lacks: accept-anything stand-ins, so the
    // dry run checks everything else for real. The chart's own CRD comes from its crds/.
    await Promise.all([
      installCrd(cp.kubeConfig, looseCrd("cert-manager.io", "Certificate", "certificates")),
      installCrd(cp.kubeConfig, looseCrd("cert-manager.io", "Issuer", "issuers")),
      installCrd(cp.kubeConfig, looseCrd("monitoring.coreos.com", "ServiceMonitor", "servicemonitors")),
    ]);
    await kubectlOk(["apply", "-f", CHART_CRDS]);
    await kubectlOk(["wait", "--for=condition=Established", `crd/${WEBAPP_CRD}`, "--timeout=30s"]);
    const ns = "kubeplug-dry";
    for (const name of [ns, "a", "b"]) await createNamespace(cp.kubeConfig, name);

    const variants: Record<string, string[]> = {
      default: [],
      certManager: ["--set", "certManager.enabled=true"],
      serviceMonitor: ["--set", "serviceMonitor.enabled=true"],
      watchNamespaces: ["--set", "watchNamespaces={a,b}"],
    };
    for (const [variant, sets] of Object.entries(variants)) {
      // The control plane's version, as `helm install` would see it (the PDB's API version depends on it).
      const rendered = await helmOk(["template", "dry", CHART, "-n", ns, "--kube-version", KUBERNETES_VERSION, ...sets]);
      const out = await kubectlOk(["apply", "--dry-run=server", "-o", "json", "-f", "-"], rendered);
      const parsed = JSON.parse(out) as KubeObject & { items?: KubeObject[] };
      const objects = parsed.items ?? [parsed];
      const byKind = (kind: string) => objects.filter((o) => o.kind === kind);
      const kinds = new Set(objects.map((o) => o.kind));
      for (const kind of [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Service",
        "Deployment",
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
        "PodDisruptionBudget",
      ]) {
        assert.ok(kinds.has(kind), `${variant}: renders a ${kind} (${[...kinds].join(", ")})`);
      }
      const [deployment] = byKind("Deployment") as DeploymentObject[];
      assertHardened(deployment as DeploymentObject, variant);
      for (const role of [...byKind("Role"), ...byKind("ClusterRole")]) assertNoWildcards(role, variant);
      const args = (deployment as DeploymentObject).spec.template.spec.containers[0]?.args ?? [];

      if (variant === "certManager") {
        const certificate = byKind("Certificate")[0] as (KubeObject & { spec: { secretName: string } }) | undefined;
        assert.ok(certificate, "certManager: a Certificate");
        assert.equal(byKind("Issuer").length, 1, "certManager: a self-signed Issuer");
        assert.equal(flag(args, "webhook-cert-dir"), "/tmp/k8s-webhook-server/serving-certs");
        for (const config of [...byKind("MutatingWebhookConfiguration"), ...byKind("ValidatingWebhookConfiguration")]) {
          assert.equal(
            config.metadata.annotations?.["cert-manager.io/inject-ca-from"],
            `${ns}/${certificate.metadata.name}`,
            `certManager: ${config.kind} takes its CA from the Certificate`,
          );
        }
      }
      if (variant === "serviceMonitor") {
        const monitor = byKind("ServiceMonitor")[0] as
          | (KubeObject & { spec: { selector: { matchLabels: Record<string, string> }; endpoints: { port: string }[] } })
          | undefined;
        assert.ok(monitor, "serviceMonitor: a ServiceMonitor");
        const service = byKind("Service")[0] as KubeObject & { spec: { ports: { name: string }[] } };
        for (const [k, v] of Object.entries(monitor.spec.selector.matchLabels))
          assert.equal(service.metadata.labels?.[k], v, `serviceMonitor: selects the Service (${k})`);
        assert.ok(
          service.spec.ports.some((p) => p.name === monitor.spec.endpoints[0]?.port),
          "serviceMonitor: port exists",
        );
      }
      if (variant === "watchNamespaces") {
        assert.equal(flag(args, "namespace"), "a,b");
        const managerBindings = byKind("RoleBinding").filter((b) => b.metadata.name === "dry-kubeplug-manager");
        assert.deepEqual(managerBindings.map((b) => b.metadata.namespace).sort(), ["a", "b"]);
        assert.ok(
          !byKind("ClusterRoleBinding").some((b) => b.metadata.name === "dry-kubeplug-manager"),
          "watchNamespaces: the manager role is not bound cluster-wide",
        );
      } else {
        assert.equal(flag(args, "namespace"), undefined);
      }
    }
  });
});

/**
 * Two plugins in one manager, end to end: WebApp and Tenant share one informer cache, one leader
 * lease, one metrics endpoint, one health endpoint and one webhook server, and work together (a
 * WebApp in a Tenant's namespace). A real control plane with kube-controller-manager (ReplicaSets,
 * service accounts, quota status) and a manager in this process.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds, installWebhookConfigurations } from "../../cli/install.ts";
import {
  Action,
  type Deployment,
  DeploymentKind,
  definePlugin,
  isNotFound,
  type Lease,
  NamespaceKind,
  objectPath,
  type ResourceQuota,
  ResourceQuotaKind,
  RestClient,
} from "../../core/runtime.ts";
import { type Tenant, TenantKind } from "../../plugins/tenant/api.ts";
import { tenantPlugin } from "../../plugins/tenant/index.ts";
import { type WebApp, WebAppKind } from "../../plugins/webapp/api.ts";
import { webAppPlugin } from "../../plugins/webapp/index.ts";
import { webhookPath } from "../../webhooks/index.ts";
import {
  type ControlPlane,
  ensureTools,
  freePort,
  startControlPlane,
  startPodReadiness,
  type Tools,
} from "../controlplane/index.ts";
import { createNamespace, fetchText, metricValue } from "../support/cluster.ts";
import { kubectlFor } from "../support/kubectl.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

const BOTH = [webAppPlugin, tenantPlugin];
/** Every kind the two plugins' controllers watch: three of WebApp's, four of Tenant's. */
const KINDS = ["Deployment", "Namespace", "ResourceQuota", "RoleBinding", "Service", "Tenant", "WebApp"];
/** The prefix of the webhook configurations; the manager's default `--webhook-configuration-name`. */
const CONFIG = "kubeplug";
/** The namespace of the lease and the webhook certificate Secret. */
const SYSTEM = "mp-system";
const LEASE = "kubeplug-leader";

let cp: ControlPlane;
let rest: RestClient;
let tools: Tools;

before(async () => {
  [cp, tools] = await Promise.all([startControlPlane(), ensureTools()]);
  rest = await RestClient.create(cp.kubeConfig);
  await installCrds(rest, BOTH);
  await warmWatchCaches(["/apis/webapp.example.com/v1/webapps", "/apis/platform.example.com/v1/tenants"]);
  await createNamespace(cp.kubeConfig, SYSTEM);
});
after(async () => {
  await rest?.close();
  await cp?.stop();
});

// ---- helpers ----------------------------------------------------------------------------------

const { kubectl } = kubectlFor(
  () => tools.kubectl,
  () => cp,
);

/** `kubectl apply -f -` of one object, which must succeed. */
async function apply(obj: Record<string, unknown>): Promise<void> {
  const run = await kubectl(["apply", "-f", "-"], JSON.stringify(obj));
  assert.equal(run.code, 0, `kubectl apply failed: ${run.stderr}`);
}

const applyTenant = (name: string, spec: Record<string, unknown>) =>
  apply({ apiVersion: "platform.example.com/v1", kind: "Tenant", metadata: { name }, spec });
const applyWebApp = (namespace: string, name: string, spec: Record<string, unknown>) =>
  apply({ apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name, namespace }, spec });

/**
 * The API server starts the watch cache of a new CRD's kind lazily, at the etcd revision of that
 * moment; a watch from the resourceVersion of an earlier list then ends with 410 Gone and the
 * informer relists, legitimately. Wait until a list and a watch from its resourceVersion work, so
 * the manager's informers list once.
 */
async function warmWatchCaches(paths: string[]): Promise<void> {
  for (const path of paths) {
    await waitFor(`a watch of ${path} from a list's resourceVersion`, async () => {
      const list = await rest.request<{ metadata: { resourceVersion: string } }>("GET", path, { query: { limit: 500 } });
      const query = { resourceVersion: list.metadata.resourceVersion, timeoutSeconds: 1 };
      for await (const event of rest.watch(path, query, AbortSignal.timeout(5_000))) {
        if (event.type === "ERROR") return false;
      }
      return true;
    });
  }
}

/** An object read from the API (not a cache), or undefined when it does not exist. */
async function read<T>(path: string): Promise<T | undefined> {
  try {
    return await rest.request<T>("GET", path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const getTenant = (name: string) => read<Tenant>(objectPath(TenantKind, name));
const getWebApp = (ns: string, name: string) => read<WebApp>(objectPath(WebAppKind, name, ns));
const getDeployment = (ns: string, name: string) => read<Deployment>(objectPath(DeploymentKind, name, ns));

/** Waits until a Tenant's status describes its current generation with phase Active. */
function waitForActive(name: string): Promise<Tenant> {
  return waitFor(`Tenant ${name} to be Active`, async () => {
    const t = await getTenant(name);
    return t?.status?.phase === "Active" && t.status.observedGeneration === t.metadata.generation ? t : undefined;
  });
}

/** The label sets of every series of `name` in a Prometheus text exposition. */
function seriesLabels(text: string, name: string): Record<string, string>[] {
  return text
    .split("\n")
    .filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `))
    .map((line) => {
      const labelText = line.startsWith(`${name}{`) ? line.slice(name.length + 1, line.indexOf("}")) : "";
      return Object.fromEntries([...labelText.matchAll(/(\w+)="([^"]*)"/g)].map((m) => [m[1] as string, m[2] as string]));
    });
}

/** What the shared cache holds: per kind, how many informers and their list/watch counts. */
function cacheSummary(tm: TestManager) {
  return tm.manager.cache
    .informedKinds()
    .map((k) => ({
      kind: k.kind.kind,
      informers: k.informers.length,
      lists: k.informers.reduce((n, i) => n + i.stats.lists, 0),
      watches: k.informers.reduce((n, i) => n + i.stats.watches, 0),
      relists: k.informers.reduce((n, i) => n + i.stats.relists, 0),
    }))
    .sort((a, b) => a.kind.localeCompare(b.kind));
}

/**
 * One informer, one list and one watch per kind, for exactly the kinds the plugins watch. A relist
 * after 410 Gone (see {@link warmWatchCaches}) is one more list and watch of the same informer, not a
 * second list+watch of the kind, and is allowed for.
 */
function assertOneListWatchPerKind(tm: TestManager): void {
  const summary = cacheSummary(tm);
  assert.deepEqual(
    summary.map((s) => s.kind),
    KINDS,
    "each kind is informed once",
  );
  assert.deepEqual(
    summary.filter((s) => s.informers !== 1 || s.lists - s.relists !== 1 || s.watches - s.relists !== 1),
    [],
    `one informer, one list and one watch per kind: ${JSON.stringify(summary)}`,
  );
}

// ---- tests ------------------------------------------------------------------------------------

describe("WebApp and Tenant in one manager", () => {
  let tm: TestManager;
  before(async () => {
    const port = await freePort();
    tm = await startTestManager(cp.kubeconfigPath, BOTH, {
      flags: [
        "--leader-elect",
        "--leader-election-namespace",
        SYSTEM,
        "--webhook-bind-address",
        `127.0.0.1:${port}`,
        "--webhook-hosts",
        "127.0.0.1",
      ],
    });
    await tm.manager.cache.waitForSync();
    await waitFor("the lease", () => tm.manager.isLeader);
    await waitFor("the webhook server to serve", () => tm.webhooks.server?.serving);
    await installWebhookConfigurations(tm.manager.client.rest, tm.webhooks, {
      url: `https://127.0.0.1:${port}`,
      name: CONFIG,
      ownNamespace: SYSTEM,
      signal: AbortSignal.timeout(30_000),
    });
    // Configuration changes reach the API server through a watch. Both plugins' webhooks are in the
    // same two configuration objects, so once the Tenant defaulter acts, the API server has them all.
    await waitFor("the API server to call the webhooks", async () => {
      const tenant = await rest.request<Tenant>("POST", "/apis/platform.example.com/v1/tenants", {
        query: { dryRun: "All" },
        body: {
          apiVersion: "platform.example.com/v1",
          kind: "Tenant",
          metadata: { name: "probe" },
          spec: { namespace: "probe", owners: [{ name: "a" }] },
        },
      });
      return tenant.spec.labels !== undefined;
    });
  });
  after(async () => {
    for (const type of ["mutating", "validating"]) {
      await rest
        .request("DELETE", `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${CONFIG}-${type}`)
        .catch(() => undefined);
    }
    await tm?.stop();
  });

  it("reconciles a WebApp in a Tenant's namespace: the Deployment appears there and its pods count against the quota", async (t) => {
    const ns = "shop-team";
    const appliedAt = performance.now();
    await applyTenant("shop", { namespace: ns, owners: [{ kind: "Group", name: "shop-devs" }], quota: { pods: "4" } });
    await waitForActive("shop");
    // The quota admission plugin counts new pods only once the quota controller has given the quota
    // a status; pods admitted before that are not counted until the controller's next full resync.
    await waitFor("the quota controller to have synced the Tenant's quota", async () => {
      const q = await read<ResourceQuota>(objectPath(ResourceQuotaKind, "tenant-quota", ns));
      return q?.status?.hard?.pods === "4";
    });
    await applyWebApp(ns, "web", { image: "nginx:1.27", replicas: 2 });
    const dep = await waitFor("the Deployment in the Tenant's namespace", () => getDeployment(ns, "web"));
    t.diagnostic(`Tenant applied -> Deployment in its namespace: ${(performance.now() - appliedAt).toFixed(0)} ms`);
    const app = (await getWebApp(ns, "web")) as WebApp;
    assert.equal(dep.metadata.ownerReferences?.[0]?.uid, app.metadata.uid);
    assert.equal(dep.spec?.replicas, 2);

    const readiness = startPodReadiness(cp.kubeConfig, { namespace: ns });
    try {
      await waitFor(
        "the WebApp to have 2 available replicas",
        async () => (await getWebApp(ns, "web"))?.status?.availableReplicas === 2,
        { timeoutMs: 60_000 },
      );
    } finally {
      await readiness.stop();
    }
    const quota = await waitFor("the quota to count the 2 pods", async () => {
      const q = await read<ResourceQuota>(objectPath(ResourceQuotaKind, "tenant-quota", ns));
      return q?.status?.used?.pods === "2" ? q : undefined;
    });
    assert.equal(quota.status?.hard?.pods, "4");
  });

  it("shares one cache: one informer, one list and one watch per kind", async (t) => {
    t.diagnostic(JSON.stringify(cacheSummary(tm)));
    // Both plugins have done work by now (the test above), so every controller has read its kinds.
    assertOneListWatchPerKind(tm);
    // Reads of both plugins' kinds through the one client come from that cache.
    assert.ok(await tm.manager.client.get(TenantKind, "shop"));
    assert.ok(await tm.manager.client.get(WebAppKind, "web", "shop-team"));
    assert.ok(await tm.manager.client.get(NamespaceKind, "shop-team"));
    assertOneListWatchPerKind(tm);
  });

  it("holds one leader lease for both plugins", async () => {
    const leases = await rest.request<{ items: Lease[] }>("GET", `/apis/coordination.k8s.io/v1/namespaces/${SYSTEM}/leases`);
    assert.deepEqual(
      leases.items.map((l) => l.metadata.name),
      [LEASE],
    );
    const holder = leases.items[0]?.spec?.holderIdentity;
    assert.ok(holder, "the lease has a holder");
    assert.ok(tm.manager.isLeader);
    const { text } = await fetchText(tm.metricsUrl);
    assert.deepEqual(seriesLabels(text, "leader_election_master_status"), [{ name: LEASE }]);
    assert.equal(metricValue(text, "leader_election_master_status", { name: LEASE }), 1);
  });

  it("serves one metrics endpoint with a controller label per plugin", async () => {
    const { status, text } = await fetchText(tm.metricsUrl);
    assert.equal(status, 200);
    for (const controller of ["webapp", "tenant"]) {
      assert.ok(
        metricValue(text, "controller_runtime_reconcile_total", { controller }) > 0,
        `controller_runtime_reconcile_total{controller="${controller}"} > 0`,
      );
      assert.equal(metricValue(text, "controller_runtime_reconcile_errors_total", { controller }), 0, controller);
    }
    assert.deepEqual(
      seriesLabels(text, "controller_runtime_max_concurrent_reconciles")
        .map((l) => l.controller)
        .sort(),
      ["tenant", "webapp"],
      "one controller per plugin",
    );
    // Both plugins' webhooks report on the same endpoint.
    for (const kind of [WebAppKind, TenantKind]) {
      for (const type of ["mutating", "validating"] as const) {
        const webhook = webhookPath(type, kind);
        assert.ok(metricValue(text, "controller_runtime_webhook_requests_total", { webhook, code: "200" }) > 0, webhook);
      }
    }
  });

  it("passes /readyz with both plugins loaded", async () => {
    const { status, text } = await fetchText(`${tm.healthUrl}/readyz?verbose`);
    assert.equal(status, 200, text);
    assert.match(text, /^\[\+\]informers ok$/m);
    assert.match(text, /^\[\+\]webhook ok$/m);
    assert.match(text, /^readyz check passed$/m);
    assert.equal((await fetchText(`${tm.healthUrl}/healthz`)).status, 200);
  });
});

describe("a third plugin watching the same kinds", () => {
  it("adds a controller but no informer, list or watch", async () => {
    const seen = new Set<string>();
    const probe = definePlugin({
      name: "probe",
      kinds: [],
      rbac: [],
      setup(ctx) {
        ctx
          .controller("probe")
          .for(NamespaceKind)
          .owns(DeploymentKind)
          .reconcile(async (ns) => {
            seen.add(ns.metadata.name);
            return Action.awaitChange();
          });
      },
    });
    const tm = await startTestManager(cp.kubeconfigPath, [...BOTH, probe]);
    try {
      await tm.manager.cache.waitForSync();
      await applyTenant("probed", { namespace: "probed", owners: [{ name: "alice" }] });
      await waitForActive("probed");
      await waitFor("the probe controller to see the Tenant's namespace", () => seen.has("probed"));
      assertOneListWatchPerKind(tm);
      const { text } = await fetchText(tm.metricsUrl);
      assert.ok(metricValue(text, "controller_runtime_reconcile_total", { controller: "probe" }) > 0);
      assert.ok(metricValue(text, "controller_runtime_reconcile_total", { controller: "tenant" }) > 0);
    } finally {
      await tm.stop();
    }
  });
});

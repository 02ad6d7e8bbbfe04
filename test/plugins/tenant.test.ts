/**
 * End-to-end tests of the Tenant plugin: a real control plane (kube-apiserver, etcd and
 * kube-controller-manager, whose namespace controller empties and removes deleted namespaces), both
 * plugins' CRDs as `run --install` applies them, their admission webhooks registered by URL with the
 * manager's HTTPS server in this process, and kubectl for what a user does.
 *
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds, installWebhookConfigurations } from "../../cli/install.ts";
import {
  ApiError,
  type ConfigMap,
  type Event,
  isNotFound,
  type KubeObject,
  type Namespace,
  NamespaceKind,
  objectPath,
  PatchType,
  type ResourceQuota,
  ResourceQuotaKind,
  RestClient,
  type RoleBinding,
  RoleBindingKind,
} from "../../core/runtime.ts";
import { plugins } from "../../plugins/index.ts";
import { TENANT_LABEL, type Tenant, TenantKind } from "../../plugins/tenant/api.ts";
import { FINALIZER } from "../../plugins/tenant/reconciler.ts";
import { DELETION_PROTECTION } from "../../plugins/tenant/webhooks.ts";
import { type ControlPlane, ensureTools, freePort, startControlPlane, type Tools } from "../controlplane/index.ts";
import { fetchText, metricValue } from "../support/cluster.ts";
import { kubectlFor } from "../support/kubectl.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

const QUOTA = "tenant-quota";
const ADMINS = "tenant-admins";
/** The prefix of the webhook configurations; the manager's default `--webhook-configuration-name`. */
const CONFIG = "kubeplug";

let cp: ControlPlane;
let rest: RestClient;
let tools: Tools;
let tm: TestManager;
let webhookPort: number;

before(async () => {
  [cp, tools] = await Promise.all([startControlPlane(), ensureTools()]);
  rest = await RestClient.create(cp.kubeConfig);
  await installCrds(rest, plugins);
  webhookPort = await freePort();
  tm = await startTestManager(cp.kubeconfigPath, plugins, {
    flags: ["--webhook-bind-address", `127.0.0.1:${webhookPort}`, "--webhook-hosts", "127.0.0.1"],
  });
  await tm.manager.cache.waitForSync();
  await waitFor("the webhook server to serve", () => tm.webhooks.server?.serving);
  await registerWebhooks();
});
after(async () => {
  // failurePolicy Fail: webhooks nobody serves would block every later Tenant write.
  if (rest) {
    for (const type of ["mutating", "validating"]) {
      await rest
        .request("DELETE", `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${CONFIG}-${type}`)
        .catch(() => undefined);
    }
  }
  await tm?.stop();
  await rest?.close();
  await cp?.stop();
});

// ---- helpers ----------------------------------------------------------------------------------

const { kubectl, kubectlOk } = kubectlFor(
  () => tools.kubectl,
  () => cp,
);

/** A Tenant manifest (JSON is YAML) for `kubectl apply -f -`. */
function tenantManifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: "platform.example.com/v1", kind: "Tenant", metadata: { name }, spec });
}

const applyTenant = (name: string, spec: Record<string, unknown>) => kubectlOk(["apply", "-f", "-"], tenantManifest(name, spec));

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
const getNamespace = (name: string) => read<Namespace>(objectPath(NamespaceKind, name));
const getQuota = (ns: string) => read<ResourceQuota>(objectPath(ResourceQuotaKind, QUOTA, ns));
const getAdmins = (ns: string) => read<RoleBinding>(objectPath(RoleBindingKind, ADMINS, ns));

const conditionOf = (t: Tenant | undefined, type: string) => t?.status?.conditions?.find((c) => c.type === type);

/** Waits until the Tenant's status describes its current generation with phase Active. */
function waitForActive(name: string): Promise<Tenant> {
  return waitFor(`Tenant ${name} to be Active`, async () => {
    const t = await getTenant(name);
    return t?.status?.phase === "Active" && t.status.observedGeneration === t.metadata.generation ? t : undefined;
  });
}

/** The controller reference every child of a Tenant carries. */
function assertOwnedBy(child: KubeObject, tenant: Tenant): void {
  const refs = child.metadata.ownerReferences ?? [];
  assert.equal(refs.length, 1, `${child.kind ?? ""} ${child.metadata.name} has one owner reference`);
  assert.deepEqual(
    { ...refs[0] },
    {
      apiVersion: "platform.example.com/v1",
      kind: "Tenant",
      name: tenant.metadata.name,
      uid: tenant.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
    `${child.metadata.name} is controlled by Tenant ${tenant.metadata.name}`,
  );
}

/** The labels of an object without the one Kubernetes (1.21 on) adds to every namespace. */
function ownLabels(obj: KubeObject | undefined): Record<string, string> {
  const { "kubernetes.io/metadata.name": _, ...labels } = obj?.metadata.labels ?? {};
  return labels;
}

/** The error a request fails with (it must fail). */
async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err;
  }
  assert.fail("the request was admitted");
}

/** A server-side dry-run create of a Tenant: goes through admission, stores nothing. */
const dryRunCreate = (name: string, spec: Record<string, unknown>) =>
  rest.request<Tenant>("POST", "/apis/platform.example.com/v1/tenants", {
    query: { dryRun: "All" },
    body: JSON.parse(tenantManifest(name, spec)),
  });

/** Registers both webhook configurations by URL, as `run --install` does, and waits until they act. */
async function registerWebhooks(): Promise<void> {
  const registered = await installWebhookConfigurations(tm.manager.client.rest, tm.webhooks, {
    url: `https://127.0.0.1:${webhookPort}`,
    name: CONFIG,
    ownNamespace: "",
    signal: AbortSignal.timeout(30_000),
  });
  assert.equal(registered.length, 2, `both webhook configurations are registered: ${registered.join(", ")}`);
  await waitForAdmission();
}

/** Webhook configurations reach the API server through a watch: wait until both webhooks act. */
async function waitForAdmission(): Promise<void> {
  await waitFor("the API server to call the Tenant webhooks", async () => {
    const defaulted = await dryRunCreate("probe", { namespace: "probe", owners: [{ name: "alice" }] });
    if (defaulted.spec.labels?.[TENANT_LABEL] !== "probe") return false;
    const denied = await dryRunCreate("probe", { namespace: "kube-system", owners: [{ name: "alice" }] }).then(
      () => false,
      (err: unknown) => err instanceof ApiError && err.code === 422,
    );
    return denied;
  });
}

/** Every version of objects at `path` (a collection, filtered by name) from `resourceVersion` on. */
function record<T extends KubeObject>(path: string, name: string, resourceVersion: string | undefined, signal: AbortSignal) {
  const seen: { type: string; object: T }[] = [];
  const done = (async () => {
    const stream = rest.watch(path, { fieldSelector: `metadata.name=${name}`, resourceVersion }, signal);
    for await (const e of stream) seen.push({ type: e.type, object: e.object as unknown as T });
  })().catch(() => undefined);
  return { seen, done };
}

/** Waits until the tenant controller has nothing queued or running. */
async function waitForIdle(): Promise<void> {
  await waitFor("the tenant controller to be idle", async () => {
    const { text } = await fetchText(tm.metricsUrl);
    return (
      metricValue(text, "workqueue_depth", { name: "tenant" }) === 0 &&
      metricValue(text, "controller_runtime_active_workers", { controller: "tenant" }) === 0
    );
  });
}

const reconcileCount = async () =>
  metricValue((await fetchText(tm.metricsUrl)).text, "controller_runtime_reconcile_total", { controller: "tenant" });

/**
 * Lets a Tenant and its children settle (the quota controller has written the quota's status, the
 * manager's cache holds the latest versions, the controller is idle, events are sent), then runs one
 * reconcile of it and returns the API requests the manager made meanwhile, by method.
 */
async function requestsOfOneReconcile(name: string, ns: string, withQuota: boolean): Promise<Record<string, number>> {
  if (withQuota)
    await waitFor("the quota controller to fill in the quota's status", async () => (await getQuota(ns))?.status?.hard);
  await waitFor("the cache to hold the latest versions", async () => {
    const cache = tm.manager.client;
    const pairs: [KubeObject | undefined, KubeObject | undefined][] = [
      [await getTenant(name), await cache.get(TenantKind, name)],
      [await getNamespace(ns), await cache.get(NamespaceKind, ns)],
      [await getAdmins(ns), await cache.get(RoleBindingKind, ADMINS, ns)],
      [await getQuota(ns), await cache.get(ResourceQuotaKind, QUOTA, ns)],
    ];
    return pairs.every(([live, cached]) => live?.metadata.resourceVersion === cached?.metadata.resourceVersion);
  });
  await waitForIdle();
  await tm.manager.recorder("tenant").flush();
  const methods = ["GET", "POST", "PUT", "PATCH", "DELETE"];
  const counts = async () =>
    Object.fromEntries(await Promise.all(methods.map(async (m) => [m, await tm.manager.metrics.restCount(m)] as const)));
  const before = await counts();
  const reconciles = await reconcileCount();
  tm.manager.getController("tenant")?.enqueue({ name });
  await waitFor("the reconcile to run", async () => (await reconcileCount()) > reconciles);
  await waitForIdle();
  await tm.manager.recorder("tenant").flush();
  const after = await counts();
  return Object.fromEntries(methods.map((m) => [m, (after[m] ?? 0) - (before[m] ?? 0)]));
}

const NO_REQUESTS = { GET: 0, POST: 0, PUT: 0, PATCH: 0, DELETE: 0 };

/** Removes the validating webhook configuration and waits until the API server no longer calls it. */
async function unregisterValidation(): Promise<void> {
  await rest
    .request("DELETE", `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${CONFIG}-validating`)
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
  await waitFor("the API server to stop validating Tenants", () =>
    dryRunCreate("probe", { namespace: "kube-system", owners: [{ name: "alice" }] }).then(
      () => true,
      () => false,
    ),
  );
}

/** Removes every finalizer of a Tenant (JSON Patch; the object may be gone). */
async function stripFinalizers(name: string): Promise<void> {
  await rest
    .request("PATCH", objectPath(TenantKind, name), {
      body: [{ op: "remove", path: "/metadata/finalizers" }],
      contentType: PatchType.json,
    })
    .catch(() => undefined);
}

// ---- tests ------------------------------------------------------------------------------------

describe("Tenant plugin", () => {
  it("turns a Tenant into a labelled Namespace, a ResourceQuota and an admin RoleBinding it owns", async (t) => {
    const appliedAt = performance.now();
    await applyTenant("team-a", {
      namespace: "team-a",
      owners: [
        { kind: "User", name: "alice" },
        { kind: "Group", name: "team-a-devs" },
      ],
      quota: { cpu: "4", memory: "8Gi", pods: "20" },
      labels: { env: "dev", "cost-center": "42" },
    });
    const tenant = await waitForActive("team-a");
    t.diagnostic(`kubectl apply -> Active: ${(performance.now() - appliedAt).toFixed(0)} ms`);

    // The defaulting webhook added the tenant label to the stored spec.
    assert.deepEqual(tenant.spec.labels, { env: "dev", "cost-center": "42", [TENANT_LABEL]: "team-a" });
    assert.deepEqual(tenant.metadata.finalizers, [FINALIZER]);

    const ns = await waitFor("the Namespace", () => getNamespace("team-a"));
    assert.deepEqual(ownLabels(ns), { env: "dev", "cost-center": "42", [TENANT_LABEL]: "team-a" });
    assertOwnedBy(ns, tenant);

    const quota = await waitFor("the ResourceQuota", () => getQuota("team-a"));
    assert.deepEqual(quota.spec?.hard, { "requests.cpu": "4", "requests.memory": "8Gi", pods: "20" });
    assertOwnedBy(quota, tenant);

    const admins = await waitFor("the RoleBinding", () => getAdmins("team-a"));
    assert.deepEqual({ ...admins.roleRef }, { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: "admin" });
    assert.deepEqual(
      admins.subjects?.map((s) => ({ ...s })),
      [
        { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "alice" },
        { apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "team-a-devs" },
      ],
    );
    assertOwnedBy(admins, tenant);

    assert.equal(tenant.status?.observedGeneration, tenant.metadata.generation);
    const ready = conditionOf(tenant, "Ready");
    assert.equal(ready?.status, "True");
    assert.equal(ready?.reason, "NamespaceReady");
    assert.equal(ready?.observedGeneration, tenant.metadata.generation);
    assert.match(ready?.message ?? "", /team-a/);
    assert.ok(!Number.isNaN(Date.parse(ready?.lastTransitionTime ?? "")), "lastTransitionTime is a time");
    assert.equal(conditionOf(tenant, "NamespaceDeleting"), undefined);

    // Events about a cluster-scoped object go to "default".
    // One Event per reconcile that created children, naming each (not one Event per child); a
    // legitimately retried reconcile may split them over two.
    const children = ["Namespace team-a", "ResourceQuota team-a/tenant-quota", "RoleBinding team-a/tenant-admins"];
    const named = await waitFor("Created events naming every child", async () => {
      const list = await rest.request<{ items: Event[] }>("GET", "/api/v1/namespaces/default/events", {
        query: { fieldSelector: `involvedObject.uid=${tenant.metadata.uid}` },
      });
      const messages = list.items.filter((e) => e.reason === "Created").map((e) => e.message ?? "");
      for (const m of messages) assert.match(m, /^Created [A-Z]\w+ [-a-z0-9/]+(, [A-Z]\w+ [-a-z0-9/]+)*$/, m);
      const all = messages.flatMap((m) => m.slice("Created ".length).split(", ")).sort();
      return all.length >= children.length ? all : undefined;
    });
    assert.deepEqual(named, children);

    const table = await kubectlOk(["get", "tenant", "team-a"]);
    const [header, row] = table.trim().split("\n");
    assert.deepEqual(header?.trim().split(/\s+/), ["NAME", "NAMESPACE", "PHASE", "AGE"]);
    assert.deepEqual(row?.trim().split(/\s+/).slice(0, 3), ["team-a", "team-a", "Active"]);
  });

  it("repairs drift: a deleted RoleBinding, a hand-edited quota, a relabelled and a deleted namespace", async (t) => {
    const name = "drift";
    await applyTenant(name, {
      namespace: name,
      owners: [{ kind: "User", name: "dora" }],
      quota: { cpu: "2", memory: "1Gi", pods: "10" },
      labels: { env: "prod" },
    });
    const tenant = await waitForActive(name);
    const hard = { "requests.cpu": "2", "requests.memory": "1Gi", pods: "10" };
    const labels = { env: "prod", [TENANT_LABEL]: name };

    // The RoleBinding deleted: recreated.
    const admins = await waitFor("the RoleBinding", () => getAdmins(name));
    let since = performance.now();
    await kubectlOk(["delete", "rolebinding", ADMINS, "-n", name]);
    const recreated = await waitFor("the RoleBinding to be recreated", async () => {
      const rb = await getAdmins(name);
      return rb && rb.metadata.uid !== admins.metadata.uid ? rb : undefined;
    });
    t.diagnostic(`RoleBinding deleted -> recreated: ${(performance.now() - since).toFixed(0)} ms`);
    assert.deepEqual(
      recreated.subjects?.map((s) => s.name),
      ["dora"],
    );
    assertOwnedBy(recreated, tenant);

    // The quota edited by hand: put back, in place.
    const quota = await waitFor("the ResourceQuota", () => getQuota(name));
    since = performance.now();
    await kubectlOk([
      "patch",
      "resourcequota",
      QUOTA,
      "-n",
      name,
      "--type=merge",
      "-p",
      JSON.stringify({ spec: { hard: { "requests.cpu": "100", "limits.cpu": "200" } } }),
    ]);
    const repaired = await waitFor("the quota to be put back", async () => {
      const q = await getQuota(name);
      return q && q.metadata.resourceVersion !== quota.metadata.resourceVersion && q.spec?.hard?.["requests.cpu"] === "2"
        ? q
        : undefined;
    });
    t.diagnostic(`quota edited -> put back: ${(performance.now() - since).toFixed(0)} ms`);
    assert.deepEqual(repaired.spec?.hard, hard);
    assert.equal(repaired.metadata.uid, quota.metadata.uid, "repaired in place, not recreated");

    // The tenant label taken off the namespace (and another one changed): put back.
    const before = (await getNamespace(name)) as Namespace;
    since = performance.now();
    await kubectlOk(["label", "namespace", name, `${TENANT_LABEL}-`, "env=test", "--overwrite"]);
    const relabelled = await waitFor("the namespace labels to be put back", async () => {
      const n = await getNamespace(name);
      return n && n.metadata.resourceVersion !== before.metadata.resourceVersion && n.metadata.labels?.[TENANT_LABEL] === name
        ? n
        : undefined;
    });
    t.diagnostic(`namespace relabelled -> put back: ${(performance.now() - since).toFixed(0)} ms`);
    assert.deepEqual(ownLabels(relabelled), labels);
    assert.equal(relabelled.metadata.uid, before.metadata.uid);

    // The namespace deleted: once the namespace controller has emptied and removed it, recreated.
    const abort = new AbortController();
    try {
      const watched = record<Namespace>("/api/v1/namespaces", name, relabelled.metadata.resourceVersion, abort.signal);
      since = performance.now();
      await kubectlOk(["delete", "namespace", name, "--wait=false"]);
      const fresh = await waitFor(
        "the namespace to be recreated",
        async () => {
          const n = await getNamespace(name);
          return n && n.metadata.uid !== before.metadata.uid && !n.metadata.deletionTimestamp ? n : undefined;
        },
        { timeoutMs: 90_000 },
      );
      t.diagnostic(`namespace deleted -> recreated: ${(performance.now() - since).toFixed(0)} ms`);
      assert.deepEqual(ownLabels(fresh), labels);
      assertOwnedBy(fresh, tenant);
      await waitFor("the watch to see the new namespace", () =>
        watched.seen.some((e) => e.type === "ADDED" && e.object.metadata.uid === fresh.metadata.uid),
      );
      const events = watched.seen.map((e) => `${e.type} ${e.object.metadata.uid === fresh.metadata.uid ? "new" : "old"}`);
      const deleted = events.indexOf("DELETED old");
      assert.ok(deleted >= 0 && deleted < events.indexOf("ADDED new"), `recreated only once gone: ${events.join(", ")}`);
    } finally {
      abort.abort();
    }
    const newQuota = await waitFor("the ResourceQuota in the new namespace", () => getQuota(name));
    assert.deepEqual(newQuota.spec?.hard, hard);
    assertOwnedBy(newQuota, tenant);
    const newAdmins = await waitFor("the RoleBinding in the new namespace", () => getAdmins(name));
    assert.deepEqual(
      newAdmins.subjects?.map((s) => s.name),
      ["dora"],
    );
    assertOwnedBy(newAdmins, tenant);
    const after = await waitForActive(name);
    assert.equal(conditionOf(after, "Ready")?.status, "True");
  });

  it("deletes the ResourceQuota when the quota leaves the spec, and updates the RoleBinding with the owners", async () => {
    const name = "shrink";
    await applyTenant(name, { namespace: name, owners: [{ kind: "User", name: "alice" }], quota: { pods: "5" } });
    await waitForActive(name);
    const quota = await waitFor("the ResourceQuota", () => getQuota(name));
    assert.deepEqual(quota.spec?.hard, { pods: "5" });
    const admins = await waitFor("the RoleBinding", () => getAdmins(name));

    await applyTenant(name, {
      namespace: name,
      owners: [
        { kind: "Group", name: "ops" },
        { kind: "User", name: "bob" },
      ],
    });
    const tenant = await waitForActive(name);
    assert.equal(tenant.metadata.generation, 2);
    assert.equal(tenant.spec.quota, undefined);
    await waitFor("the ResourceQuota to be deleted", async () => !(await getQuota(name)));
    const updated = await waitFor("the RoleBinding to name the new owners", async () => {
      const rb = await getAdmins(name);
      return rb?.subjects?.length === 2 && rb.subjects[0]?.name === "ops" ? rb : undefined;
    });
    assert.deepEqual(
      updated.subjects?.map((s) => ({ ...s })),
      [
        { apiGroup: "rbac.authorization.k8s.io", kind: "Group", name: "ops" },
        { apiGroup: "rbac.authorization.k8s.io", kind: "User", name: "bob" },
      ],
    );
    assert.equal(updated.metadata.uid, admins.metadata.uid, "updated in place, not recreated");
    assertOwnedBy(updated, tenant);
  });

  it("denies a bad namespace name, a bad quantity, no owners and a reserved namespace, naming the field", async (t) => {
    const owners = [{ kind: "User", name: "alice" }];
    const cases: { name: string; spec: Record<string, unknown>; says: string }[] = [
      {
        name: "bad-name",
        spec: { namespace: "Team_A", owners },
        says:
          'The Tenant "bad-name" is invalid: spec.namespace: Invalid value: "Team_A": namespace must be a DNS-1123 label: ' +
          "lower-case letters, digits and '-', starting and ending alphanumeric",
      },
      {
        name: "bad-cpu",
        spec: { namespace: "bad-cpu", owners, quota: { cpu: "lots" } },
        says:
          'The Tenant "bad-cpu" is invalid: spec.quota.cpu: Invalid value: "lots": ' +
          "cpu requests must be a Kubernetes quantity such as 500m, 2, 4Gi",
      },
      {
        name: "no-owners",
        spec: { namespace: "no-owners", owners: [] },
        says: 'The Tenant "no-owners" is invalid: spec.owners: Invalid value: []: owners must name at least one user or group',
      },
      {
        name: "reserved",
        spec: { namespace: "kube-system", owners },
        says: 'The Tenant "reserved" is invalid: spec.namespace: Invalid value: "kube-system": namespace is reserved for the system',
      },
    ];
    for (const c of cases) {
      const run = await kubectl(["apply", "-f", "-"], tenantManifest(c.name, c.spec));
      t.diagnostic(`${c.name}: ${run.stderr.trim()}`);
      assert.notEqual(run.code, 0, `${c.name} was admitted: ${run.stdout}`);
      assert.equal(run.stderr.trim(), c.says, c.name);
      assert.equal(await getTenant(c.name), undefined, `${c.name} was not stored`);
    }
    assert.equal(await getNamespace("bad-cpu"), undefined);

    // The API's answer: 422 Invalid with one cause per bad field.
    const err = await failure(dryRunCreate("two-bad", { namespace: "Team_A", owners: [], quota: { memory: "much" } }));
    assert.equal(err.code, 422);
    assert.equal(err.reason, "Invalid");
    assert.deepEqual(err.status?.details?.causes?.map((c) => c.field).sort(), [
      "spec.namespace",
      "spec.owners",
      "spec.quota.memory",
    ]);
  });

  it("denies deleting a protected Tenant at admission (a validator on DELETE), and deletes it once unprotected", async (t) => {
    await applyTenant("guarded", { namespace: "guarded", owners: [{ kind: "User", name: "alice" }] });
    await waitForActive("guarded");
    await kubectlOk(["annotate", "tenant", "guarded", `${DELETION_PROTECTION}=true`]);
    const denied = await kubectl(["delete", "tenant", "guarded", "--wait=false"]);
    t.diagnostic(denied.stderr.trim());
    assert.notEqual(denied.code, 0, `a protected Tenant was deleted: ${denied.stdout}`);
    assert.match(
      denied.stderr,
      /metadata\.annotations\[platform\.example\.com\/deletion-protection\]: Forbidden: Tenant "guarded" is protected from deletion; remove the annotation first/,
    );
    const kept = await getTenant("guarded");
    assert.ok(kept && !kept.metadata.deletionTimestamp, "the Tenant is not being deleted");

    await kubectlOk(["annotate", "tenant", "guarded", `${DELETION_PROTECTION}-`]);
    await kubectlOk(["delete", "tenant", "guarded", "--wait=false"]);
    await waitFor(
      "the unprotected Tenant to be gone",
      async () => ((await getTenant("guarded")) === undefined ? true : undefined),
      {
        timeoutMs: 180_000,
      },
    );
  });

  it("passes a defaulter's warning to the client when it overrides the tenant label", async () => {
    const spec = { namespace: "relabel", owners: [{ kind: "User", name: "alice" }], labels: { [TENANT_LABEL]: "someone-else" } };
    const run = await kubectl(["apply", "-f", "-"], tenantManifest("relabel", spec));
    assert.equal(run.code, 0, run.stderr);
    assert.match(
      run.stderr,
      /Warning: spec\.labels\["platform\.example\.com\/tenant"\] was "someone-else"; set to the Tenant's name "relabel"/,
    );
    assert.equal((await getTenant("relabel"))?.spec.labels?.[TENANT_LABEL], "relabel");
    await kubectlOk(["delete", "tenant", "relabel", "--wait=false"]);
  });

  it("denies changing spec.namespace, and a second Tenant for a namespace another one owns", async (t) => {
    const spec = { namespace: "claimed", owners: [{ kind: "User", name: "alice" }] };
    await applyTenant("first", spec);
    const first = await waitForActive("first");

    const moved = await kubectl(["apply", "-f", "-"], tenantManifest("first", { ...spec, namespace: "elsewhere" }));
    t.diagnostic(`immutable: ${moved.stderr.trim()}`);
    assert.notEqual(moved.code, 0, moved.stdout);
    assert.equal(
      moved.stderr.trim(),
      'The Tenant "first" is invalid: spec.namespace: Forbidden: field is immutable (was "claimed")',
    );
    const stored = (await getTenant("first")) as Tenant;
    assert.equal(stored.spec.namespace, "claimed");
    assert.equal(stored.metadata.generation, first.metadata.generation);
    assert.equal(await getNamespace("elsewhere"), undefined);

    const second = await kubectl(["apply", "-f", "-"], tenantManifest("second", spec));
    t.diagnostic(`claimed: ${second.stderr.trim()}`);
    assert.notEqual(second.code, 0, second.stdout);
    assert.equal(
      second.stderr.trim(),
      'The Tenant "second" is invalid: spec.namespace: Invalid value: "claimed": namespace "claimed" is already claimed by ' +
        'Tenant "first"; Tenant "second" cannot claim it too',
    );
    assert.equal(await getTenant("second"), undefined);
    const err = await failure(dryRunCreate("second", spec));
    assert.equal(err.code, 422);
    assert.deepEqual(
      err.status?.details?.causes?.map((c) => ({ ...c })),
      [
        {
          reason: "FieldValueInvalid",
          field: "spec.namespace",
          message:
            'Invalid value: "claimed": namespace "claimed" is already claimed by Tenant "first"; Tenant "second" cannot claim it too',
        },
      ],
    );
  });

  it("reports NamespaceTaken for a namespace it does not own, leaves it alone, and lets the Tenant go", async () => {
    const ns = "foreign";
    await rest.request("POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns, labels: { owner: "someone-else" } } },
    });
    await applyTenant("squatter", { namespace: ns, owners: [{ kind: "User", name: "alice" }], quota: { pods: "1" } });
    const tenant = await waitFor("the Tenant to fail", async () => {
      const tt = await getTenant("squatter");
      return tt?.status?.phase === "Failed" ? tt : undefined;
    });
    const ready = conditionOf(tenant, "Ready");
    assert.deepEqual(
      { status: ready?.status, reason: ready?.reason, message: ready?.message },
      {
        status: "False",
        reason: "NamespaceTaken",
        message: "namespace foreign is controlled by nobody (it existed before the Tenant)",
      },
    );
    assert.equal(tenant.status?.observedGeneration, tenant.metadata.generation);
    const untouched = (await getNamespace(ns)) as Namespace;
    assert.deepEqual(ownLabels(untouched), { owner: "someone-else" });
    assert.equal(untouched.metadata.ownerReferences, undefined);
    assert.equal(await getQuota(ns), undefined);
    assert.equal(await getAdmins(ns), undefined);

    // Deleting the Tenant does not delete a namespace it never owned.
    await kubectlOk(["delete", "tenant", "squatter", "--wait=false"]);
    await waitFor("the Tenant to disappear", async () => !(await getTenant("squatter")));
    const still = (await getNamespace(ns)) as Namespace;
    assert.equal(still.metadata.uid, untouched.metadata.uid);
    assert.equal(still.metadata.deletionTimestamp, undefined);
  });

  it("takes its namespace once the foreign one that blocked it is gone", async () => {
    const ns = "later";
    const foreign = await rest.request<Namespace>("POST", "/api/v1/namespaces", {
      body: { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } },
    });
    await applyTenant(ns, { namespace: ns, owners: [{ kind: "User", name: "alice" }] });
    await waitFor("the Tenant to fail", async () => (await getTenant(ns))?.status?.phase === "Failed");
    await kubectlOk(["delete", "namespace", ns, "--wait=false"]);
    // Gone, or already replaced by the Tenant's own.
    await waitFor(
      "the foreign namespace to be gone",
      async () => (await getNamespace(ns))?.metadata.uid !== foreign.metadata.uid,
      { timeoutMs: 60_000 },
    );
    const tenant = await waitFor(
      "the Tenant to take the namespace",
      async () => {
        const tt = await getTenant(ns);
        return tt?.status?.phase === "Active" ? tt : undefined;
      },
      { timeoutMs: 15_000 },
    );
    assertOwnedBy((await waitFor("the namespace", () => getNamespace(ns))) as Namespace, tenant);
  });

  it("makes no request at all when a reconcile finds everything in place", async () => {
    await applyTenant("steady", {
      namespace: "steady",
      owners: [{ kind: "User", name: "alice" }],
      quota: { cpu: "2", memory: "1Gi", pods: "10" },
      labels: { env: "prod" },
    });
    await waitForActive("steady");
    assert.deepEqual(await requestsOfOneReconcile("steady", "steady", true), NO_REQUESTS);
  });

  it("makes no request when the API server has rewritten the quota's quantities (0.5 -> 500m, 1024Mi -> 1Gi)", async () => {
    await applyTenant("canon", {
      namespace: "canon",
      owners: [{ kind: "User", name: "alice" }],
      quota: { cpu: "0.5", memory: "1024Mi", pods: "10" },
    });
    await waitForActive("canon");
    const quota = await waitFor("the ResourceQuota", () => getQuota("canon"));
    assert.deepEqual(quota.spec?.hard, { "requests.cpu": "500m", "requests.memory": "1Gi", pods: "10" });
    assert.deepEqual(await requestsOfOneReconcile("canon", "canon", true), NO_REQUESTS);
  });

  it("makes no request for a Tenant without a quota", async () => {
    await applyTenant("bare", { namespace: "bare", owners: [{ kind: "User", name: "alice" }] });
    await waitForActive("bare");
    assert.deepEqual(await requestsOfOneReconcile("bare", "bare", false), NO_REQUESTS);
  });

  it("denies labels and quantities the API server would reject, naming the field", async () => {
    const owners = [{ kind: "User", name: "alice" }];
    const cases: { spec: Record<string, unknown>; field: string }[] = [
      { spec: { namespace: "bad-label-key", owners, labels: { "bad key!": "x" } }, field: "spec.labels" },
      { spec: { namespace: "long-label", owners, labels: { team: "x".repeat(64) } }, field: "spec.labels" },
      { spec: { namespace: "negative", owners, quota: { cpu: "-1" } }, field: "spec.quota.cpu" },
    ];
    const admitted: string[] = [];
    for (const c of cases) {
      const err = await dryRunCreate(c.spec.namespace as string, c.spec).then(
        () => undefined,
        (e: unknown) => e,
      );
      if (!(err instanceof ApiError)) {
        admitted.push(JSON.stringify(c.spec));
        continue;
      }
      assert.equal(err.code, 422);
      assert.ok(
        err.status?.details?.causes?.some((cause) => cause.field?.startsWith(c.field)),
        `${JSON.stringify(c.spec)}: ${err.message}`,
      );
    }
    assert.deepEqual(admitted, [], "every bad spec is denied");
  });

  it("a Tenant that slipped past the claim check blocks neither the first Tenant's updates nor its deletion", async (t) => {
    await applyTenant("keeper", { namespace: "contested", owners: [{ kind: "User", name: "alice" }] });
    await waitForActive("keeper");
    try {
      // A second claim the webhook never saw, as when two creates race the webhook's cache.
      await unregisterValidation();
      await applyTenant("intruder", { namespace: "contested", owners: [{ kind: "User", name: "mallory" }] });
      await registerWebhooks();
      const intruder = await waitFor("the intruder to fail", async () => {
        const tt = await getTenant("intruder");
        return tt?.status?.phase === "Failed" ? tt : undefined;
      });
      assert.equal(conditionOf(intruder, "Ready")?.message, "namespace contested is controlled by Tenant keeper");

      const label = await kubectl(["label", "tenant", "keeper", "reviewed=yes"]);
      t.diagnostic(`label keeper: ${label.stderr.trim() || label.stdout.trim()}`);
      assert.equal(label.code, 0, "a metadata change of the first Tenant is admitted");

      await kubectlOk(["delete", "tenant", "keeper", "--wait=false"]);
      await waitFor("the first Tenant to be deleted", async () => !(await getTenant("keeper")), { timeoutMs: 30_000 });
      await kubectlOk(["delete", "tenant", "intruder", "--wait=false"]);
      await waitFor("the second Tenant to be deleted", async () => !(await getTenant("intruder")), { timeoutMs: 30_000 });
    } finally {
      // Whatever happened, leave no Tenant stuck behind the validating webhook.
      if ((await getTenant("keeper")) || (await getTenant("intruder"))) {
        await unregisterValidation();
        for (const name of ["keeper", "intruder"]) {
          await rest.request("DELETE", objectPath(TenantKind, name)).catch(() => undefined);
          await stripFinalizers(name);
        }
      }
      await registerWebhooks();
    }
  });

  it("on deletion deletes the namespace, shows Terminating while it goes, and disappears once it is gone", async (t) => {
    const name = "bye";
    await applyTenant(name, { namespace: name, owners: [{ kind: "User", name: "alice" }], quota: { pods: "3" } });
    const tenant = await waitForActive(name);
    const ns = (await getNamespace(name)) as Namespace;

    // Something in the namespace with a finalizer of its own holds the namespace in Terminating
    // until the test lets it go, so the Tenant's Terminating state is there to be seen.
    const HOLD = "test.kubeplug.dev/hold";
    await rest.request<ConfigMap>("POST", `/api/v1/namespaces/${name}/configmaps`, {
      body: { apiVersion: "v1", kind: "ConfigMap", metadata: { name: "hold", namespace: name, finalizers: [HOLD] } },
    });

    const abort = new AbortController();
    try {
      const watched = record<Tenant>(
        "/apis/platform.example.com/v1/tenants",
        name,
        (await getTenant(name))?.metadata.resourceVersion,
        abort.signal,
      );
      const deletedAt = performance.now();
      await kubectlOk(["delete", "tenant", name, "--wait=false"]);

      const terminating = await waitFor("the Tenant to show Terminating", async () => {
        const tt = await getTenant(name);
        return tt?.status?.phase === "Terminating" ? tt : undefined;
      });
      t.diagnostic(`kubectl delete -> phase Terminating: ${(performance.now() - deletedAt).toFixed(0)} ms`);
      assert.ok(terminating.metadata.deletionTimestamp, "the Tenant is being deleted");
      assert.deepEqual(terminating.metadata.finalizers, [FINALIZER], "and is held by its finalizer");
      const deleting = conditionOf(terminating, "NamespaceDeleting");
      assert.equal(deleting?.status, "True");
      assert.equal(deleting?.reason, "WaitingForNamespace");
      assert.match(deleting?.message ?? "", /^waiting for namespace bye to be deleted/);
      const terminatingNs = (await getNamespace(name)) as Namespace;
      assert.equal(terminatingNs.metadata.uid, ns.metadata.uid);
      assert.ok(terminatingNs.metadata.deletionTimestamp, "the namespace is being deleted");
      assert.equal(terminatingNs.status?.phase, "Terminating");

      // The namespace controller has emptied everything else; only the held ConfigMap is left.
      await waitFor("the namespace controller to have deleted the quota", async () => !(await getQuota(name)), {
        timeoutMs: 60_000,
      });
      assert.ok(await getTenant(name), "the Tenant stays while its namespace exists");

      const releasedAt = performance.now();
      await rest.request("PATCH", `/api/v1/namespaces/${name}/configmaps/hold`, {
        body: [
          { op: "test", path: "/metadata/finalizers", value: [HOLD] },
          { op: "remove", path: "/metadata/finalizers" },
        ],
        contentType: PatchType.json,
      });
      await waitFor("the Tenant to disappear", async () => !(await getTenant(name)), { timeoutMs: 90_000 });
      t.diagnostic(`hold released -> Tenant gone: ${(performance.now() - releasedAt).toFixed(0)} ms`);
      assert.equal(await getNamespace(name), undefined, "the namespace was gone before the Tenant");

      await waitFor("the watch to see the Tenant's deletion", () => watched.seen.some((e) => e.type === "DELETED"));
      const states = watched.seen.map(
        (e) =>
          `${e.type}:${e.object.status?.phase ?? "-"}:${conditionOf(e.object, "NamespaceDeleting")?.status ?? "-"}` +
          `:${e.object.metadata.finalizers?.length ?? 0}`,
      );
      const gone = states.findIndex((s) => s.startsWith("DELETED"));
      assert.ok(
        states.slice(0, gone).some((s) => s.startsWith("MODIFIED:Terminating:True:1")),
        `Terminating with NamespaceDeleting and the finalizer before it went: ${states.join(", ")}`,
      );

      // Event writes wait for the controllers to be quiet (core/events/recorder.ts).
      let reasons: string[] = [];
      await waitFor("the DeletingNamespace Event", async () => {
        const events = await rest.request<{ items: Event[] }>("GET", "/api/v1/namespaces/default/events", {
          query: { fieldSelector: `involvedObject.uid=${tenant.metadata.uid}` },
        });
        reasons = events.items.map((e) => `${e.reason}: ${e.message}`);
        return events.items.some((e) => e.reason === "DeletingNamespace" && e.message === "deleting namespace bye");
      }).catch((err: unknown) => {
        throw new Error(`${String(err)}; Events: ${JSON.stringify(reasons)}`);
      });
    } finally {
      abort.abort();
    }
  });
});

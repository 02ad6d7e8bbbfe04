/**
 * End-to-end tests of the WebApp plugin: a real control plane (kube-apiserver, etcd and
 * kube-controller-manager for Deployments and garbage collection), the CRD as `run --install` applies
 * it, kubectl for what a user does, and a manager running the plugin in this process.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds } from "../../cli/install.ts";
import {
  type Deployment,
  DeploymentKind,
  type Event,
  isNotFound,
  type Kind,
  type KubeObject,
  objectPath,
  type Pod,
  RestClient,
  type Service,
  ServiceKind,
} from "../../core/runtime.ts";
import { type WebApp, WebAppKind } from "../../plugins/webapp/api.ts";
import { webAppPlugin } from "../../plugins/webapp/index.ts";
import { FINALIZER } from "../../plugins/webapp/reconciler.ts";
import {
  type ControlPlane,
  ensureTools,
  type PodReadiness,
  startControlPlane,
  startPodReadiness,
  type Tools,
} from "../controlplane/index.ts";
import { createNamespace, fetchText, metricValue } from "../support/cluster.ts";
import { kubectlFor } from "../support/kubectl.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

let cp: ControlPlane;
let rest: RestClient;
let tools: Tools;

before(async () => {
  [cp, tools] = await Promise.all([startControlPlane(), ensureTools()]);
  rest = await RestClient.create(cp.kubeConfig);
  await installCrds(rest, [webAppPlugin]);
  await waitForGarbageCollector();
});
after(async () => {
  await rest?.close();
  await cp?.stop();
});

// ---- helpers ----------------------------------------------------------------------------------

const { kubectl, kubectlOk } = kubectlFor(
  () => tools.kubectl,
  () => cp,
);

/** A WebApp manifest (JSON is YAML) for `kubectl apply -f -`. */
function webAppManifest(namespace: string, name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name, namespace }, spec });
}

const applyWebApp = (namespace: string, name: string, spec: Record<string, unknown>) =>
  kubectlOk(["apply", "-f", "-"], webAppManifest(namespace, name, spec));

/** An object read from the API (not a cache), or undefined when it does not exist. */
async function read<T>(path: string): Promise<T | undefined> {
  try {
    return await rest.request<T>("GET", path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

const getWebApp = (ns: string, name: string) => read<WebApp>(objectPath(WebAppKind, name, ns));
const getDeployment = (ns: string, name: string) => read<Deployment>(objectPath(DeploymentKind, name, ns));
const getService = (ns: string, name: string) => read<Service>(objectPath(ServiceKind, name, ns));

async function listPods(ns: string, selector: string): Promise<Pod[]> {
  const list = await rest.request<{ items: Pod[] }>("GET", `/api/v1/namespaces/${ns}/pods`, {
    query: { labelSelector: selector },
  });
  return list.items;
}

async function eventsAbout(ns: string, uid: string): Promise<Event[]> {
  const list = await rest.request<{ items: Event[] }>("GET", `/api/v1/namespaces/${ns}/events`, {
    query: { fieldSelector: `involvedObject.uid=${uid}` },
  });
  return list.items;
}

const conditionOf = (app: WebApp | undefined, type: string) => app?.status?.conditions?.find((c) => c.type === type);

/** The controller reference a child must carry. */
function assertOwnedBy(child: KubeObject, app: WebApp): void {
  const refs = child.metadata.ownerReferences ?? [];
  assert.equal(refs.length, 1, `${child.metadata.name} has one owner reference`);
  assert.deepEqual(
    { ...refs[0] },
    {
      apiVersion: "webapp.example.com/v1",
      kind: "WebApp",
      name: app.metadata.name,
      uid: app.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  );
}

/** Deletes a WebApp and waits until it and its children are gone (the manager must be running). */
async function deleteWebApp(ns: string, name: string): Promise<void> {
  await kubectlOk(["delete", "webapp", name, "-n", ns, "--wait=false"]);
  await waitFor(`WebApp ${ns}/${name} and its children to be gone`, async () => {
    const [app, dep, svc] = await Promise.all([getWebApp(ns, name), getDeployment(ns, name), getService(ns, name)]);
    if (app || dep || svc) {
      const pods = await listPods(ns, `app=${name}`);
      throw new Error(
        `still there: ${JSON.stringify({ webApp: app?.metadata.finalizers ?? !!app, deployment: !!dep, service: !!svc, pods: pods.length })}`,
      );
    }
    return true;
  });
}

/** The parts (`metadata.x`, `spec`, `status.y`) in which two versions of an object differ. */
function changedParts(old: KubeObject, obj: KubeObject): string {
  const parts: string[] = [];
  const a = old as unknown as Record<string, Record<string, unknown>>;
  const b = obj as unknown as Record<string, Record<string, unknown>>;
  for (const top of new Set([...Object.keys(a), ...Object.keys(b)])) {
    const [x, y] = [a[top], b[top]];
    if (JSON.stringify(x) === JSON.stringify(y)) continue;
    if (typeof x !== "object" || typeof y !== "object" || !x || !y) parts.push(top);
    else
      for (const key of new Set([...Object.keys(x), ...Object.keys(y)]))
        if (JSON.stringify(x[key]) !== JSON.stringify(y[key])) parts.push(`${top}.${key}`);
  }
  return parts.join(",");
}

/** Waits until the webapp controller has nothing queued or running. */
async function waitForIdle(tm: TestManager): Promise<void> {
  await waitFor("the webapp controller to be idle", async () => {
    const { text } = await fetchText(tm.metricsUrl);
    return (
      metricValue(text, "workqueue_depth", { name: "webapp" }) === 0 &&
      metricValue(text, "controller_runtime_active_workers", { controller: "webapp" }) === 0
    );
  });
}

/**
 * kube-controller-manager's garbage collector learns of a new kind only at its next discovery sync
 * (every 30 s); until then children of a deleted WebApp stay. Probe with a fresh owner and child per
 * attempt (a fresh object has no retry backoff in the collector) until a child is collected at once.
 */
async function waitForGarbageCollector(): Promise<void> {
  const ns = "default";
  let attempt = 0;
  await waitFor(
    "the garbage collector to know WebApps",
    async () => {
      const name = `gc-probe-${attempt++}`;
      const owner = await rest.request<WebApp>("POST", `/apis/webapp.example.com/v1/namespaces/${ns}/webapps`, {
        body: JSON.parse(webAppManifest(ns, name, { image: "nginx:1.27" })),
      });
      await rest.request("POST", `/api/v1/namespaces/${ns}/configmaps`, {
        body: {
          apiVersion: "v1",
          kind: "ConfigMap",
          metadata: {
            name,
            namespace: ns,
            ownerReferences: [{ apiVersion: "webapp.example.com/v1", kind: "WebApp", name, uid: owner.metadata.uid }],
          },
        },
      });
      // No manager runs yet, so the WebApp has no finalizer and goes at once.
      await rest.request("DELETE", objectPath(WebAppKind, name, ns));
      return waitFor(
        "the probe ConfigMap to be collected",
        async () => !(await read(`/api/v1/namespaces/${ns}/configmaps/${name}`)),
        {
          timeoutMs: 3_000,
        },
      ).catch(() => false);
    },
    { timeoutMs: 120_000, intervalMs: 500 },
  );
}

// ---- tests ------------------------------------------------------------------------------------

describe("WebApp plugin", () => {
  let tm: TestManager;
  before(async () => {
    tm = await startTestManager(cp.kubeconfigPath, [webAppPlugin]);
    await tm.manager.cache.waitForSync();
  });
  after(async () => {
    await tm?.stop();
  });

  it("turns a WebApp into a Deployment and a Service it owns", async () => {
    const ns = "wa-create";
    await createNamespace(cp.kubeConfig, ns);
    await applyWebApp(ns, "shop", { image: "nginx:1.27", replicas: 2, port: 8081 });
    const dep = await waitFor("the Deployment", () => getDeployment(ns, "shop"));
    const svc = await waitFor("the Service", () => getService(ns, "shop"));
    const app = (await getWebApp(ns, "shop")) as WebApp;
    const labels = { app: "shop", "app.kubernetes.io/managed-by": "kubeplug" };

    assert.equal(dep.spec?.replicas, 2);
    assert.deepEqual(dep.metadata.labels, labels);
    assert.deepEqual(dep.spec?.selector, { matchLabels: { app: "shop" } });
    assert.deepEqual(dep.spec?.template.metadata?.labels, labels);
    const containers = dep.spec?.template.spec?.containers ?? [];
    assert.equal(containers.length, 1);
    assert.equal(containers[0]?.image, "nginx:1.27");
    assert.deepEqual(
      containers[0]?.ports?.map((p) => p.containerPort),
      [8081],
    );
    assertOwnedBy(dep, app);

    assert.deepEqual(svc.metadata.labels, labels);
    assert.equal(svc.spec?.type, "ClusterIP");
    assert.deepEqual(svc.spec?.selector, { app: "shop" });
    assert.deepEqual(
      svc.spec?.ports?.map((p) => ({ port: p.port, targetPort: p.targetPort, protocol: p.protocol })),
      [{ port: 80, targetPort: 8081, protocol: "TCP" }],
    );
    assertOwnedBy(svc, app);
    assert.deepEqual(app.metadata.finalizers, [FINALIZER]);

    await deleteWebApp(ns, "shop");
  });

  it("takes defaults from the CRD and lets the API server refuse bad specs", async () => {
    const ns = "wa-defaults";
    await createNamespace(cp.kubeConfig, ns);
    await applyWebApp(ns, "plain", { image: "nginx:1.27" });
    const app = (await getWebApp(ns, "plain")) as WebApp;
    assert.deepEqual(app.spec, { image: "nginx:1.27", replicas: 1, port: 8080, serviceType: "ClusterIP" });
    const dep = await waitFor("the Deployment", () => getDeployment(ns, "plain"));
    assert.equal(dep.spec?.replicas, 1);
    assert.equal(dep.spec?.template.spec?.containers[0]?.ports?.[0]?.containerPort, 8080);
    const svc = await waitFor("the Service", () => getService(ns, "plain"));
    assert.equal(svc.spec?.type, "ClusterIP");
    assert.equal(svc.spec?.ports?.[0]?.targetPort, 8080);

    const refused: [Record<string, unknown>, RegExp][] = [
      [{ image: "nginx:1.27", replicas: 11 }, /spec\.replicas: Invalid value: 11\b.*less than or equal to 10/],
      [{ image: "nginx:1.27", port: 70000 }, /spec\.port: Invalid value: 70000\b.*less than or equal to 65535/],
      [{ replicas: 2 }, /spec\.image: Required value/],
    ];
    for (const [spec, field] of refused) {
      // --validate=false: kubectl checks required fields itself once the CRD's OpenAPI is published
      // (a moment after it is established); the API server is what must refuse.
      const run = await kubectl(["apply", "--validate=false", "-f", "-"], webAppManifest(ns, "bad", spec));
      assert.notEqual(run.code, 0, `kubectl apply of ${JSON.stringify(spec)} must fail`);
      assert.match(run.stderr, field, `the error names the field: ${run.stderr}`);
    }
    assert.equal(await getWebApp(ns, "bad"), undefined, "nothing was stored");

    await deleteWebApp(ns, "plain");
  });

  it("keeps the Deployment and Service as the WebApp says", async (t) => {
    const ns = "wa-repair";
    await createNamespace(cp.kubeConfig, ns);
    await applyWebApp(ns, "web", { image: "nginx:1.27", replicas: 2 });
    await waitFor("the Deployment", () => getDeployment(ns, "web"));

    // The WebApp changes: the Deployment follows.
    await applyWebApp(ns, "web", { image: "nginx:1.28", replicas: 3 });
    const followed = await waitFor("the Deployment to follow the WebApp", async () => {
      const d = await getDeployment(ns, "web");
      return d?.spec?.replicas === 3 && d.spec.template.spec?.containers[0]?.image === "nginx:1.28" ? d : undefined;
    });

    // Scaled by hand: put back (one generation for the scale, one for the repair).
    await kubectlOk(["scale", "deployment/web", "-n", ns, "--replicas=5"]);
    const scaledBack = await waitFor("the Deployment to be scaled back to 3", async () => {
      const d = await getDeployment(ns, "web");
      return d && (d.metadata.generation ?? 0) >= (followed.metadata.generation ?? 0) + 2 ? d : undefined;
    });
    assert.equal(scaledBack.spec?.replicas, 3);

    // Deleted: recreated.
    const deletedAt = performance.now();
    await kubectlOk(["delete", "deployment", "web", "-n", ns, "--wait=false"]);
    const recreated = await waitFor("the Deployment to be recreated", async () => {
      const d = await getDeployment(ns, "web");
      return d && d.metadata.uid !== followed.metadata.uid ? d : undefined;
    });
    t.diagnostic(`Deployment deletion -> recreation: ${(performance.now() - deletedAt).toFixed(0)} ms`);
    assert.equal(recreated.spec?.replicas, 3);
    assert.equal(recreated.spec?.template.spec?.containers[0]?.image, "nginx:1.28");

    // The Service edited by hand: put back.
    const svc = await waitFor("the Service", () => getService(ns, "web"));
    await kubectlOk([
      "patch",
      "service",
      "web",
      "-n",
      ns,
      "--type=json",
      "-p",
      JSON.stringify([
        { op: "replace", path: "/spec/ports/0/port", value: 81 },
        { op: "replace", path: "/spec/ports/0/targetPort", value: 9999 },
      ]),
    ]);
    const repaired = await waitFor("the Service port to be put back", async () => {
      const s = await getService(ns, "web");
      return s && s.metadata.resourceVersion !== svc.metadata.resourceVersion && s.spec?.ports?.[0]?.port === 80 ? s : undefined;
    });
    assert.deepEqual(
      repaired.spec?.ports?.map((p) => ({ port: p.port, targetPort: p.targetPort })),
      [{ port: 80, targetPort: 8080 }],
    );
    assert.equal(repaired.metadata.uid, svc.metadata.uid, "repaired in place, not recreated");

    await deleteWebApp(ns, "web");
  });

  it("reports available replicas and conditions as pods become ready", async (t) => {
    const ns = "wa-status";
    await createNamespace(cp.kubeConfig, ns);
    let readiness: PodReadiness | undefined = startPodReadiness(cp.kubeConfig, { namespace: ns });
    try {
      const appliedAt = performance.now();
      await applyWebApp(ns, "status", { image: "nginx:1.27", replicas: 2 });
      let app = await waitFor("availableReplicas == 2", async () => {
        const a = await getWebApp(ns, "status");
        return a?.status?.availableReplicas === 2 ? a : undefined;
      });
      t.diagnostic(`kubectl apply -> availableReplicas == replicas (2): ${(performance.now() - appliedAt).toFixed(0)} ms`);
      assert.equal(app.status?.observedGeneration, app.metadata.generation);
      const summary = (a: WebApp) =>
        Object.fromEntries(
          ["Available", "Progressing", "Degraded"].map((type) => {
            const c = conditionOf(a, type);
            return [type, { status: c?.status, reason: c?.reason, observedGeneration: c?.observedGeneration }];
          }),
        );
      assert.deepEqual(summary(app), {
        Available: { status: "True", reason: "MinimumReplicasAvailable", observedGeneration: app.metadata.generation },
        Progressing: { status: "False", reason: "Complete", observedGeneration: app.metadata.generation },
        Degraded: { status: "False", reason: "AsExpected", observedGeneration: app.metadata.generation },
      });
      for (const c of app.status?.conditions ?? []) assert.ok(c.message && !Number.isNaN(Date.parse(c.lastTransitionTime)));

      // No kubelet marks the third pod ready: one short, and the conditions say so.
      await readiness.stop();
      readiness = undefined;
      await applyWebApp(ns, "status", { image: "nginx:1.27", replicas: 3 });
      app = await waitFor("the status of generation 2", async () => {
        const a = await getWebApp(ns, "status");
        return a && a.metadata.generation === 2 && a.status?.observedGeneration === 2 ? a : undefined;
      });
      assert.equal(app.status?.availableReplicas, 2);
      assert.deepEqual(summary(app), {
        Available: { status: "False", reason: "MinimumReplicasUnavailable", observedGeneration: 2 },
        Progressing: { status: "True", reason: "ReplicasUpdating", observedGeneration: 2 },
        Degraded: { status: "False", reason: "AsExpected", observedGeneration: 2 },
      });
      await waitFor("3 pods", async () => (await listPods(ns, "app=status")).length === 3);

      readiness = startPodReadiness(cp.kubeConfig, { namespace: ns });
      app = await waitFor("availableReplicas == 3", async () => {
        const a = await getWebApp(ns, "status");
        return a?.status?.availableReplicas === 3 && conditionOf(a, "Available")?.status === "True" ? a : undefined;
      });
      assert.equal(conditionOf(app, "Progressing")?.reason, "Complete");

      const table = await kubectlOk(["get", "webapp", "status", "-n", ns]);
      const [header, row] = table.trim().split("\n");
      assert.deepEqual(header?.trim().split(/\s+/), ["NAME", "IMAGE", "REPLICAS", "AVAILABLE", "AGE"]);
      const cells = row?.trim().split(/\s+/) ?? [];
      assert.deepEqual(cells.slice(0, 4), ["status", "nginx:1.27", "3", "3"]);
      assert.match(cells[4] ?? "", /^\d+s$/, `AGE: ${row}`);

      await deleteWebApp(ns, "status");
    } finally {
      await readiness?.stop();
    }
  });

  it("switches the Service to NodePort and back to ClusterIP", async () => {
    const ns = "wa-nodeport";
    await createNamespace(cp.kubeConfig, ns);
    await applyWebApp(ns, "np", { image: "nginx:1.27", serviceType: "NodePort" });
    const nodePort = await waitFor("a NodePort Service with an allocated port", async () => {
      const s = await getService(ns, "np");
      return s?.spec?.type === "NodePort" ? s.spec.ports?.[0]?.nodePort : undefined;
    });
    assert.ok(nodePort >= 30000 && nodePort <= 32767, `node port ${nodePort} is in the default range`);

    await applyWebApp(ns, "np", { image: "nginx:1.27", serviceType: "ClusterIP" });
    const svc = await waitFor("a ClusterIP Service", async () => {
      const s = await getService(ns, "np");
      return s?.spec?.type === "ClusterIP" ? s : undefined;
    });
    assert.equal(svc.spec?.ports?.length, 1);
    assert.equal(svc.spec?.ports?.[0]?.nodePort, undefined, "the node port is released");
    assert.equal(svc.spec?.ports?.[0]?.port, 80);

    await deleteWebApp(ns, "np");
  });

  it("runs the finalizer on deletion: scale to 0, wait for the pods, then let GC remove the children", async () => {
    const ns = "wa-finalizer";
    await createNamespace(cp.kubeConfig, ns);
    const readiness = startPodReadiness(cp.kubeConfig, { namespace: ns });
    const watchAbort = new AbortController();
    try {
      await applyWebApp(ns, "bye", { image: "nginx:1.27", replicas: 2 });
      const app = await waitFor("2 available replicas", async () => {
        const a = await getWebApp(ns, "bye");
        return a?.status?.availableReplicas === 2 ? a : undefined;
      });
      assert.deepEqual(app.metadata.finalizers, [FINALIZER]);
      const dep = (await getDeployment(ns, "bye")) as Deployment;
      assert.ok(await getService(ns, "bye"), "the Service exists before deletion");
      assert.equal((await listPods(ns, "app=bye")).length, 2);

      // Every version of the Deployment from now on, to see the scale-down however short it lasts.
      const seen: { type: string; replicas: number | undefined }[] = [];
      const watching = (async () => {
        const stream = rest.watch(
          `/apis/apps/v1/namespaces/${ns}/deployments`,
          { fieldSelector: "metadata.name=bye", resourceVersion: dep.metadata.resourceVersion },
          watchAbort.signal,
        );
        for await (const e of stream) {
          seen.push({ type: e.type, replicas: (e.object as unknown as Deployment).spec?.replicas });
        }
      })().catch(() => undefined);

      await kubectlOk(["delete", "webapp", "bye", "-n", ns, "--wait=false"]);
      await waitFor("the WebApp to disappear", async () => !(await getWebApp(ns, "bye")));
      assert.deepEqual(await listPods(ns, "app=bye"), [], "the pods were gone before the finalizer was removed");
      const events = await waitFor("the Finalized event", async () => {
        const list = await eventsAbout(ns, app.metadata.uid as string);
        return list.some((e) => e.reason === "Finalized") ? list : undefined;
      });
      const finalized = events.find((e) => e.reason === "Finalized");
      assert.equal(finalized?.type, "Normal");
      assert.ok(events.some((e) => e.reason === "ScalingDown"));

      await waitFor("the Deployment and Service to be garbage-collected", async () => {
        const [d, s] = await Promise.all([getDeployment(ns, "bye"), getService(ns, "bye")]);
        return !d && !s;
      });
      await waitFor("the watch to see the Deployment's deletion", () => seen.some((e) => e.type === "DELETED"));
      const deletedAt = seen.findIndex((e) => e.type === "DELETED");
      assert.ok(
        seen.slice(0, deletedAt).some((e) => e.type === "MODIFIED" && e.replicas === 0),
        `the Deployment was scaled to 0 before it was deleted: ${JSON.stringify(seen)}`,
      );
      watchAbort.abort();
      await watching;
    } finally {
      watchAbort.abort();
      await readiness.stop();
    }
  });
});

describe("WebApp plugin at rest", () => {
  // A manager of its own: the first one may still hold a delayed requeue (a cleanup's
  // requeueAfter outlives the WebApp it was for) that would fire, harmlessly, in the quiet window.
  let tm: TestManager;
  before(async () => {
    tm = await startTestManager(cp.kubeconfigPath, [webAppPlugin]);
    await tm.manager.cache.waitForSync();
  });
  after(async () => {
    await tm?.stop();
  });

  it("does not loop once converged: no writes and no reconciles while nothing changes", async () => {
    const ns = "wa-quiet";
    await createNamespace(cp.kubeConfig, ns);
    const readiness = startPodReadiness(cp.kubeConfig, { namespace: ns });
    try {
      await applyWebApp(ns, "quiet", { image: "nginx:1.27", replicas: 2, serviceType: "NodePort" });
      await waitFor("the WebApp and its Deployment to converge", async () => {
        const [a, d] = await Promise.all([getWebApp(ns, "quiet"), getDeployment(ns, "quiet")]);
        const progressing = d?.status?.conditions?.find((c) => c.type === "Progressing");
        return (
          a?.status?.availableReplicas === 2 &&
          a.status.observedGeneration === a.metadata.generation &&
          d?.status?.observedGeneration === d?.metadata.generation &&
          d?.status?.updatedReplicas === 2 &&
          progressing?.reason === "NewReplicaSetAvailable"
        );
      });
      // The manager's cache has caught up with the API, and the controller has handled it all.
      await waitFor("the cache to hold the latest versions", async () => {
        const [a, d, s] = await Promise.all([getWebApp(ns, "quiet"), getDeployment(ns, "quiet"), getService(ns, "quiet")]);
        const cache = tm.manager.client;
        return (
          (await cache.get(WebAppKind, "quiet", ns))?.metadata.resourceVersion === a?.metadata.resourceVersion &&
          (await cache.get(DeploymentKind, "quiet", ns))?.metadata.resourceVersion === d?.metadata.resourceVersion &&
          (await cache.get(ServiceKind, "quiet", ns))?.metadata.resourceVersion === s?.metadata.resourceVersion
        );
      });
      await waitForIdle(tm);
      await tm.manager.recorder("webapp").flush();

      const metrics = tm.manager.metrics;
      const counts = async () => ({
        PUT: await metrics.restCount("PUT"),
        POST: await metrics.restCount("POST"),
        PATCH: await metrics.restCount("PATCH"),
        GET: await metrics.restCount("GET"),
        reconciles: metricValue((await fetchText(tm.metricsUrl)).text, "controller_runtime_reconcile_total", {
          controller: "webapp",
        }),
      });
      // What the manager's cache sees change during the window, to name the cause when it fails.
      const changes: string[] = [];
      const removers = [WebAppKind, DeploymentKind, ServiceKind].map((kind) => {
        const what = (obj: KubeObject) => `${kind.kind} ${obj.metadata.namespace}/${obj.metadata.name}`;
        return tm.manager.cache.informer(kind as Kind).addHandler({
          onUpdate: (old, obj) => changes.push(`update ${what(obj)}: ${changedParts(old, obj)}`),
          onDelete: (obj) => changes.push(`delete ${what(obj)}`),
        });
      });
      try {
        const before = await counts();
        // The one fixed wait in these tests, and on purpose: the claim is that nothing happens while
        // nothing changes, which only a stretch of time can show. A hot loop (a status write waking its
        // own watch, a repair fighting a defaulted field) would reconcile and write many times in 3 s.
        await new Promise((r) => setTimeout(r, 3000));
        assert.deepEqual(
          await counts(),
          before,
          `no writes, no reads and no reconciles while nothing changed; the cache saw: ${JSON.stringify(changes)}`,
        );
      } finally {
        for (const remove of removers) remove();
      }

      await deleteWebApp(ns, "quiet");
    } finally {
      await readiness.stop();
    }
  });
});

describe("WebApp plugin limited to namespaces", () => {
  const one = "one-ns";
  const other = "other-ns";
  before(async () => {
    await createNamespace(cp.kubeConfig, one);
    await createNamespace(cp.kubeConfig, other);
  });

  it("a manager with --namespace one-ns leaves the other namespace alone", async () => {
    const limited = await startTestManager(cp.kubeconfigPath, [webAppPlugin], { flags: ["--namespace", one] });
    let everywhere: TestManager | undefined;
    try {
      await limited.manager.cache.waitForSync();
      const informers = limited.manager.cache.informedKinds().find((k) => k.kind.kind === "WebApp")?.informers ?? [];
      assert.deepEqual(
        informers.map((i) => i.namespace),
        [one],
        "WebApps are watched in one-ns only",
      );

      // The other namespace's WebApp first: once one-ns's is handled, the other one had its chance.
      await applyWebApp(other, "app", { image: "nginx:1.27" });
      await applyWebApp(one, "app", { image: "nginx:1.27" });
      await waitFor("the Deployment in one-ns", () => getDeployment(one, "app"));
      await waitFor("the Service in one-ns", () => getService(one, "app"));
      await waitForIdle(limited);
      assert.equal(await getDeployment(other, "app"), undefined, "no Deployment in other-ns");
      assert.equal(await getService(other, "app"), undefined, "no Service in other-ns");
      const untouched = (await getWebApp(other, "app")) as WebApp;
      assert.equal(untouched.metadata.finalizers, undefined, "no finalizer on other-ns's WebApp");
      assert.equal(untouched.status, undefined, "no status on other-ns's WebApp");

      // The WebApp itself is fine: a manager for all namespaces serves both.
      everywhere = await startTestManager(cp.kubeconfigPath, [webAppPlugin]);
      const dep = await waitFor("the Deployment in other-ns from the all-namespaces manager", () => getDeployment(other, "app"));
      assertOwnedBy(dep, (await getWebApp(other, "app")) as WebApp);

      await deleteWebApp(other, "app");
      await deleteWebApp(one, "app");
    } finally {
      await everywhere?.stop();
      await limited.stop();
    }
  });
});

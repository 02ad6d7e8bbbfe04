/**
 * Losing the leader lease is not fatal: with the API server unreachable past the renew deadline the
 * manager stops its controllers but keeps running (health, metrics, caches), and once the API server
 * answers again it takes the lease back and reconciles, with the default informer backoff. A write in
 * flight when the lease is lost is abandoned. The outage is a TCP proxy in front of a real API server,
 * silent and then refusing.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { ConfigMapKind, FencedError, type KubeObject, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { widgetCrd, widgetPlugin } from "../fixtures/widget-plugin.ts";
import { createNamespace, fetchText, installCrd, metricValue } from "../support/cluster.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { proxiedKubeConfig, startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { waitFor } from "../support/wait.ts";

const NS = "lease-loss";

describe("losing the leader lease", () => {
  let cp: ControlPlane;
  let rest: RestClient;
  let proxy: TcpProxy;
  let tm: TestManager;
  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
    await installCrd(cp.kubeConfig, widgetCrd);
    await createNamespace(cp.kubeConfig, NS);
    proxy = await startTcpProxy("127.0.0.1", Number(new URL(cp.server).port));
    tm = await startTestManager(cp.kubeconfigPath, [widgetPlugin()], {
      kubeConfig: proxiedKubeConfig(cp.kubeConfig, proxy.port),
      flags: [
        "--leader-elect",
        "--leader-election-namespace",
        NS,
        "--leader-elect-lease-duration",
        "8s",
        "--leader-elect-renew-deadline",
        "6s",
        "--leader-elect-retry-period",
        "1s",
      ],
    });
  });
  after(async () => {
    proxy?.setMode("pass");
    await tm?.stop();
    await proxy?.close();
    await rest?.close();
    await cp?.stop();
  });

  const create = (name: string) =>
    rest.request("POST", `/apis/test.kubeplug.dev/v1/namespaces/${NS}/widgets`, {
      body: { apiVersion: "test.kubeplug.dev/v1", kind: "Widget", metadata: { name, namespace: NS }, spec: { size: 1 } },
    });
  const reconciled = (name: string) =>
    waitFor(
      `the ConfigMap of Widget ${name}`,
      () => rest.request<KubeObject>("GET", `/api/v1/namespaces/${NS}/configmaps/${name}-data`).catch(() => undefined),
      { timeoutMs: 60_000 },
    );

  it("stops the controllers, keeps the process and its servers, takes the lease back and reconciles again", async (t) => {
    await waitFor("the lease", () => tm.manager.isLeader, { timeoutMs: 30_000 });
    await create("before");
    await reconciled("before");

    // Silence first (every connection held, nothing answered), so a controller write is in flight
    // when the lease is lost; then refuse, dropping what was held.
    proxy.setMode("blackhole");
    proxy.freezeCurrent();
    const cutAt = performance.now();
    const inFlight = tm.manager.controllerClient.create(ConfigMapKind, { metadata: { name: "in-flight", namespace: NS } }).then(
      () => undefined,
      (err: unknown) => err,
    );
    await waitFor("the lease to be lost", () => !tm.manager.isLeader, { timeoutMs: 60_000 });
    t.diagnostic(`lease lost ${((performance.now() - cutAt) / 1000).toFixed(1)} s after the API server went silent`);
    // Abandoned when the lease was lost, not left to its own timeout: the drain does not wait on it.
    const abandoned = await inFlight;
    assert.ok(
      abandoned instanceof FencedError && /abandoned in flight/.test(abandoned.message),
      `the write in flight ends with a FencedError saying it was abandoned, got ${String(abandoned)}`,
    );
    proxy.setMode("refuse");
    proxy.cut();
    const health = await fetchText(`${tm.healthUrl}/healthz`);
    assert.equal(health.status, 200, "the process and its health server are still up");
    const metrics = (await fetchText(tm.metricsUrl)).text;
    assert.equal(metricValue(metrics, "kubeplug_leader_election_lost_total"), 1);
    assert.equal(metricValue(metrics, "leader_election_master_status"), 0);
    // The write fence: past the renew deadline the controllers' client refuses to send any write.
    await assert.rejects(
      tm.manager.controllerClient.create(ConfigMapKind, { metadata: { name: "fenced", namespace: NS } }),
      (err: unknown) => err instanceof FencedError && /leader lease/.test(err.message),
    );
    assert.ok(metricValue((await fetchText(tm.metricsUrl)).text, "kubeplug_leader_fenced_writes_total") >= 1);

    proxy.setMode("pass");
    const backAt = performance.now();
    await waitFor("the lease again", () => tm.manager.isLeader, { timeoutMs: 60_000 });
    t.diagnostic(`leading again ${((performance.now() - backAt) / 1000).toFixed(1)} s after the API server came back`);
    await create("after");
    await reconciled("after");
    t.diagnostic(
      `a Widget created after the outage reconciled ${((performance.now() - backAt) / 1000).toFixed(1)} s after the API server came back`,
    );
    assert.deepEqual(await tm.stop(), {}, "a clean stop: no error, although the lease was lost once");
  });
});

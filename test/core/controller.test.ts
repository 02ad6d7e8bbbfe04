import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { createServer } from "node:net";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import {
  ConfigError,
  ConfigMapKind,
  createManager,
  definePlugin,
  type KubeObject,
  kindOf,
  PluginLoadError,
  parseManagerConfig,
  RestClient,
} from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { attempts, finished, type Widget, WidgetKind, widgetCrd, widgetPlugin } from "../fixtures/widget-plugin.ts";
import { createNamespace, fetchText, installCrd, metricValue } from "../support/cluster.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

let cp: ControlPlane;
let rest: RestClient;

before(async () => {
  cp = await startControlPlane();
  rest = await RestClient.create(cp.kubeConfig);
  await installCrd(cp.kubeConfig, widgetCrd);
});
after(async () => {
  await rest?.close();
  await cp?.stop();
});

const widgetPath = (ns: string, name = "") => `/apis/test.kubeplug.dev/v1/namespaces/${ns}/widgets${name ? `/${name}` : ""}`;

async function createWidget(ns: string, name: string, annotations: Record<string, string> = {}, size = 1): Promise<Widget> {
  return rest.request<Widget>("POST", widgetPath(ns), {
    body: { apiVersion: "test.kubeplug.dev/v1", kind: "Widget", metadata: { name, namespace: ns, annotations }, spec: { size } },
  });
}

async function configMap(ns: string, name: string): Promise<KubeObject | undefined> {
  try {
    return await rest.request<KubeObject>("GET", `/api/v1/namespaces/${ns}/configmaps/${name}`);
  } catch {
    return undefined;
  }
}

const attemptsOf = (key: string, controller = "widget") => attempts.filter((a) => a.key === key && a.controller === controller);

describe("controllers on the shared cache", () => {
  let tm: TestManager;
  const ns = "ctrl";
  before(async () => {
    await createNamespace(cp.kubeConfig, ns);
    tm = await startTestManager(cp.kubeconfigPath, [widgetPlugin({ controllers: 2, childWatch: true })]);
    await tm.manager.cache.waitForSync();
  });
  after(async () => {
    await tm?.stop();
  });

  it("gives two controllers on the same kind one list and one watch", async () => {
    await createWidget(ns, "shared");
    await waitFor(
      "both controllers to reconcile",
      () => attemptsOf(`${ns}/shared`).length > 0 && attemptsOf(`${ns}/shared`, "widget-1").length > 0,
    );
    const widgets = tm.manager.cache.informedKinds().filter((k) => k.kind.kind === "Widget");
    assert.equal(widgets.length, 1, "one informer set for Widget");
    assert.equal(widgets[0]?.informers.length, 1, "one informer (all namespaces)");
    const { stats } = (widgets[0] as (typeof widgets)[number]).informers[0] as { stats: { lists: number; watches: number } };
    assert.deepEqual({ lists: stats.lists, watches: stats.watches }, { lists: 1, watches: 1 });
    // The API saw exactly one LIST+WATCH (both GETs) per informed kind: Widget and ConfigMap.
    const gets = await tm.manager.metrics.restCount("GET");
    assert.equal(gets, 4, "2 kinds x (1 list + 1 watch)");
  });

  it("wakes the owner when an owned child is deleted, and repairs it", async () => {
    await createWidget(ns, "owner");
    const first = await waitFor("the child ConfigMap", () => configMap(ns, "owner-data"));
    await rest.request("DELETE", `/api/v1/namespaces/${ns}/configmaps/owner-data`);
    const again = await waitFor("the child ConfigMap to be recreated", async () => {
      const cm = await configMap(ns, "owner-data");
      return cm && cm.metadata.uid !== first.metadata.uid ? cm : undefined;
    });
    assert.ok(again.metadata.ownerReferences?.[0]?.controller);
  });

  it("runs the owner's reconcile once per update of an owned child, which two of its sources map to it", async () => {
    await createWidget(ns, "once");
    await waitFor("the child ConfigMap", () => configMap(ns, "once-data"));
    const key = `${ns}/once`;
    /** Waits until this Widget's reconciles stopped for 2 s, and returns their count. */
    const settled = async () => {
      let last = attemptsOf(key).length;
      let since = performance.now();
      return waitFor("the Widget's reconciles to settle", () => {
        const now = attemptsOf(key).length;
        if (now !== last) [last, since] = [now, performance.now()];
        return performance.now() - since >= 2_000 ? now : undefined;
      });
    };
    const before = await settled();
    // A change the reconciler does not manage: it wakes the owner and is left as it is.
    await rest.request("PATCH", `/api/v1/namespaces/${ns}/configmaps/once-data`, {
      body: { metadata: { annotations: { touched: "yes" } } },
      contentType: "application/merge-patch+json",
    });
    await waitFor("the owner's reconcile", () => attemptsOf(key).length > before);
    // Without merging the old and new objects' owners, or with the watch's add (resolved later in
    // the turn) not coalescing with the owns source's, the worker that got the first add runs twice.
    assert.equal((await settled()) - before, 1, "one reconcile for one update");
  });

  it("filters status-only updates with the generation-changed predicate", async () => {
    await createWidget(ns, "quiet");
    await waitFor(
      "observedGeneration",
      async () => (await rest.request<Widget>("GET", widgetPath(ns, "quiet"))).status?.observedGeneration === 1,
    );
    const adds = () => fetchText(tm.metricsUrl).then((m) => metricValue(m.text, "workqueue_adds_total", { name: "widget" }));
    await waitFor("the queue to settle", async () => {
      const first = await adds();
      return tm.manager.getController("widget") !== undefined && first === (await adds());
    });
    const before = await adds();
    const patched = await rest.request<Widget>("PATCH", `${widgetPath(ns, "quiet")}/status`, {
      body: { status: { reconciles: 42 } },
      contentType: "application/merge-patch+json",
    });
    // Handlers run synchronously when the informer stores an event: once the cache has the new
    // resourceVersion, any enqueue the status update caused has already happened.
    await waitFor("the cache to see the status update", async () => {
      const cached = await tm.manager.client.get(WidgetKind, "quiet", ns);
      return cached?.metadata.resourceVersion === patched.metadata.resourceVersion;
    });
    assert.equal(await adds(), before, "a status-only update enqueues nothing");
    await rest.request("PATCH", widgetPath(ns, "quiet"), {
      body: { spec: { size: 2 } },
      contentType: "application/merge-patch+json",
    });
    await waitFor("a spec change to enqueue", async () => (await adds()) > before);
  });

  it("retries a throwing reconcile with growing delays", async () => {
    await createWidget(ns, "failing", { "test.kubeplug.dev/fail": "true" });
    const key = `${ns}/failing`;
    await waitFor("7 attempts", () => attemptsOf(key).length >= 7, { timeoutMs: 20_000 });
    const times = attemptsOf(key).map((a) => a.at);
    const gaps = times.slice(1).map((t, i) => t - (times[i] as number));
    // 5 ms doubling: retry n waits at least 5 * 2^n ms. Only lower bounds are checked: a loaded
    // machine makes any gap longer (the first one too), never shorter than its backoff.
    const shown = gaps.map((g) => g.toFixed(1)).join(", ");
    for (const [i, gap] of gaps.slice(0, 6).entries())
      assert.ok(gap >= 5 * 2 ** i * 0.9, `gap ${i} >= ${5 * 2 ** i} ms: ${shown}`);
    assert.ok((gaps[5] as number) >= 144, `the sixth retry waited ~160 ms, far longer than the first 5 ms: ${shown}`);
    const metrics = (await fetchText(tm.metricsUrl)).text;
    assert.ok(metricValue(metrics, "workqueue_retries_total", { name: "widget" }) >= 6);
    assert.ok(metricValue(metrics, "controller_runtime_reconcile_errors_total", { controller: "widget" }) >= 7);
    assert.ok(metricValue(metrics, "controller_runtime_reconcile_total", { controller: "widget", result: "error" }) >= 7);
    await rest.request("DELETE", widgetPath(ns, "failing"));
  });

  it("requeues a reconcile that lost a write race (Conflict) without a Warning Event", async () => {
    const created = await createWidget(ns, "racing", { "test.kubeplug.dev/conflicts": "2" });
    await waitFor("converged after two lost races", async () => {
      const w = await rest.request<Widget>("GET", widgetPath(ns, "racing"));
      return w.status?.observedGeneration === 1;
    });
    assert.ok(attemptsOf(`${ns}/racing`).length >= 3);
    const metrics = (await fetchText(tm.metricsUrl)).text;
    assert.ok(metricValue(metrics, "controller_runtime_reconcile_total", { controller: "widget", result: "requeue" }) >= 2);
    // Events are written in the order recorded: once the successful reconcile's Event is there, a
    // Warning of the earlier attempts would be too.
    const reasons = async () => {
      const events = await rest.request<{ items: { reason: string; involvedObject: { uid: string } }[] }>(
        "GET",
        `/api/v1/namespaces/${ns}/events`,
      );
      return events.items.filter((e) => e.involvedObject.uid === created.metadata.uid).map((e) => e.reason);
    };
    await waitFor("the successful reconcile's Event", async () => (await reasons()).includes("WonRace"));
    assert.ok(!(await reasons()).includes("ReconcileError"), `no ReconcileError Event: ${(await reasons()).join(", ")}`);
    await rest.request("DELETE", widgetPath(ns, "racing"));
  });

  it("runs a reconcile again after requeueAfter", async () => {
    await createWidget(ns, "periodic", { "test.kubeplug.dev/requeue-after-ms": "200" });
    await waitFor("3 runs with no change in between", () => attemptsOf(`${ns}/periodic`).length >= 3);
    await waitFor("3 requeue_after results", async () => {
      const metrics = (await fetchText(tm.metricsUrl)).text;
      return metricValue(metrics, "controller_runtime_reconcile_total", { controller: "widget", result: "requeue_after" }) >= 3;
    });
    await rest.request("DELETE", widgetPath(ns, "periodic"));
  });

  it("reconciles from the cache: no GET while reconciling", async () => {
    const gets = await tm.manager.metrics.restCount("GET");
    const names = ["r1", "r2", "r3", "r4", "r5"];
    for (const name of names) await createWidget(ns, name, {}, 7);
    for (const name of names) {
      await waitFor(`${name} converged`, async () => {
        const w = await rest.request<Widget>("GET", widgetPath(ns, name));
        return w.status?.observedGeneration === 1 && (await configMap(ns, `${name}-data`));
      });
    }
    assert.ok(names.every((n) => attemptsOf(`${ns}/${n}`).length > 0));
    assert.equal(await tm.manager.metrics.restCount("GET"), gets, "the reconciles made no GET requests");
  });

  it("exposes controller-runtime's metric names", async () => {
    const { text } = await fetchText(tm.metricsUrl);
    for (const name of [
      "controller_runtime_reconcile_total",
      "controller_runtime_reconcile_errors_total",
      "controller_runtime_reconcile_time_seconds",
      "controller_runtime_max_concurrent_reconciles",
      "controller_runtime_active_workers",
      "workqueue_depth",
      "workqueue_adds_total",
      "workqueue_queue_duration_seconds",
      "workqueue_work_duration_seconds",
      "workqueue_retries_total",
      "workqueue_unfinished_work_seconds",
      "workqueue_longest_running_processor_seconds",
      "rest_client_requests_total",
      "leader_election_master_status",
      "process_cpu_seconds_total",
      "process_resident_memory_bytes",
      "nodejs_heap_size_used_bytes",
    ]) {
      assert.match(text, new RegExp(`^# TYPE ${name} `, "m"), `${name} is exposed`);
    }
    assert.equal(metricValue(text, "controller_runtime_max_concurrent_reconciles", { controller: "widget" }), 4);
    // Series exist at zero before anything happened to them (controller-runtime's initMetrics).
    for (const series of [
      'controller_runtime_reconcile_panics_total{controller="widget-1"} 0',
      'controller_runtime_terminal_reconcile_errors_total{controller="widget-1"} 0',
    ]) {
      assert.ok(text.split("\n").includes(series), `${series} is exposed`);
    }
    assert.match(text, /^controller_runtime_reconcile_total\{controller="widget-1",result="requeue_after"\} \d+$/m);
  });
});

describe("readiness and shutdown", () => {
  it("fails /readyz before the caches sync and passes after", async () => {
    const Gadget = kindOf<KubeObject>({
      group: "late.kubeplug.dev",
      version: "v1",
      kind: "Gadget",
      plural: "gadgets",
      namespaced: true,
    });
    const plugin = definePlugin({
      name: "gadget",
      kinds: [Gadget],
      rbac: [],
      setup(ctx) {
        ctx
          .controller("gadget")
          .for(Gadget)
          .reconcile(async () => undefined);
      },
    });
    // The Gadget CRD does not exist yet, so its list fails and the cache cannot sync.
    const tm = await startTestManager(cp.kubeconfigPath, [plugin], { informer: { backoffMs: [100, 500] } });
    try {
      const before = await waitFor("the health server", () => fetchText(`${tm.healthUrl}/readyz`).catch(() => undefined));
      assert.equal(before.status, 500);
      assert.match(before.text, /\[-\]informers failed: informer caches have not synced yet/);
      assert.equal((await fetchText(`${tm.healthUrl}/healthz`)).status, 200);
      const crd = structuredClone(widgetCrd);
      Object.assign(crd.metadata, { name: "gadgets.late.kubeplug.dev" });
      Object.assign(crd.spec, { group: "late.kubeplug.dev", names: { plural: "gadgets", singular: "gadget", kind: "Gadget" } });
      await installCrd(cp.kubeConfig, crd);
      const ready = await waitFor("/readyz to pass", async () => {
        const r = await fetchText(`${tm.healthUrl}/readyz`);
        return r.status === 200 ? r : undefined;
      });
      assert.equal(ready.text, "ok");
    } finally {
      await tm.stop();
    }
  });

  it("lets an in-flight reconcile finish on stop", async () => {
    const ns = "shutdown";
    await createNamespace(cp.kubeConfig, ns);
    const tm = await startTestManager(cp.kubeconfigPath, [widgetPlugin()]);
    await createWidget(ns, "slow", { "test.kubeplug.dev/slow-ms": "1500" });
    await waitFor("the slow reconcile to start", () => attemptsOf(`${ns}/slow`).length > 0);
    const exit = await tm.stop();
    assert.deepEqual(exit, {});
    assert.ok(
      finished.some((f) => f.key === `${ns}/slow`),
      "the in-flight reconcile ran to its end before stop resolved",
    );
  });
});

describe("plugins and configuration", () => {
  it("stops start-up with a message naming a plugin that fails to load", async () => {
    const broken = definePlugin({
      name: "broken",
      kinds: [],
      rbac: [],
      setup() {
        throw new Error("missing setting FOO");
      },
    });
    const { config } = parseManagerConfig(["--kubeconfig", cp.kubeconfigPath], {});
    await assert.rejects(createManager({ config, plugins: [broken] }), (err: Error) => {
      assert.ok(err instanceof PluginLoadError);
      assert.equal(err.message, 'plugin "broken" failed to load: missing setting FOO');
      return true;
    });
  });

  it("with --plugin-failure skip, runs the other plugins and says which one is out (readiness, metric, Event)", async () => {
    const broken = definePlugin({
      name: "half-done",
      kinds: [],
      setup(ctx) {
        // Declared before the failure: a plugin that fails must leave nothing behind.
        ctx
          .controller("half-done")
          .for(ConfigMapKind)
          .reconcile(async () => undefined);
        throw new Error("missing setting FOO");
      },
    });
    const tm = await startTestManager(cp.kubeconfigPath, [broken, widgetPlugin()], { flags: ["--plugin-failure", "skip"] });
    try {
      assert.equal(tm.manager.getController("half-done"), undefined, "the failed plugin's controller was not adopted");
      assert.ok(tm.manager.getController("widget"), "the other plugin runs");
      const ready = await waitFor("/readyz", async () => {
        const r = await fetchText(`${tm.healthUrl}/readyz?verbose`).catch(() => undefined);
        return r?.status === 200 ? r : undefined;
      });
      assert.match(ready.text, /\[\+\]plugins ok: running widget; left out: half-done \(failed to load: missing setting FOO\)/);
      const metrics = (await fetchText(tm.metricsUrl)).text;
      assert.equal(metricValue(metrics, "kubeplug_plugin_status", { plugin: "half-done", status: "failed" }), 1);
      assert.equal(metricValue(metrics, "kubeplug_plugin_status", { plugin: "widget", status: "running" }), 1);
      await waitFor("a PluginLeftOut Event", async () => {
        const events = await rest.request<{ items: { reason?: string; message?: string }[] }>(
          "GET",
          "/api/v1/namespaces/default/events",
        );
        return events.items.find(
          (e) => e.reason === "PluginLeftOut" && /plugin "half-done" failed to load/.test(e.message ?? ""),
        );
      });
    } finally {
      await tm.stop();
    }
  });

  it("refuses an unknown plugin and lists the available ones", async () => {
    const { config } = parseManagerConfig(["--kubeconfig", cp.kubeconfigPath, "--plugins", "widget,nope"], {});
    await assert.rejects(createManager({ config, plugins: [widgetPlugin()] }), (err: Error) => {
      assert.ok(err instanceof ConfigError);
      assert.match(err.message, /--plugins: unknown plugin "nope"; available: widget/);
      return true;
    });
  });

  it("exits 1 with the reason when a port it needs is taken, instead of crashing", async () => {
    const blocker = createServer();
    await new Promise<void>((r) => blocker.listen(0, "127.0.0.1", () => r()));
    const port = (blocker.address() as { port: number }).port;
    try {
      const child = spawn(process.execPath, [
        join(import.meta.dirname, "../fixtures/run-widget-manager.ts"),
        "--kubeconfig",
        cp.kubeconfigPath,
        "--metrics-bind-address",
        `127.0.0.1:${port}`,
        "--health-probe-bind-address",
        "0",
      ]);
      let stderr = "";
      child.stderr.on("data", (d) => {
        stderr += d;
      });
      const code = await new Promise((r) => child.on("exit", r));
      assert.equal(code, 1);
      assert.match(stderr, /kubeplug run: .*EADDRINUSE.*127\.0\.0\.1:\d+/);
    } finally {
      blocker.close();
    }
  });

  it("reads flags and KUBEPLUG_* variables, flags winning", () => {
    const { config } = parseManagerConfig(
      ["--leader-elect", "--namespace", "a,b", "--namespace", "c", "--graceful-shutdown-timeout", "1m30s"],
      {
        KUBEPLUG_MAX_CONCURRENT_RECONCILES: "7",
        KUBEPLUG_LEADER_ELECT: "false",
        KUBEPLUG_LOG_LEVEL: "debug",
      },
    );
    assert.equal(config.leaderElect, true);
    assert.deepEqual(config.namespaces, ["a", "b", "c"]);
    assert.equal(config.gracefulShutdownTimeoutMs, 90_000);
    assert.equal(config.maxConcurrentReconciles, 7);
    assert.equal(config.logLevel, "debug");
    assert.deepEqual(config.metricsBindAddress, { host: "0.0.0.0", port: 8080 });
    assert.equal(parseManagerConfig(["--metrics-bind-address", "0"], {}).config.metricsBindAddress, undefined);
  });

  it("names the bad flag and what is allowed", () => {
    const cases: [string[], RegExp][] = [
      [["--max-concurrent-reconciles", "0"], /--max-concurrent-reconciles: .*>=1; workers per controller \(1\.\.1000\)/],
      [
        ["--leader-elect", "--leader-elect-lease-duration", "2s"],
        /--leader-elect-lease-duration: must be longer than --leader-elect-renew-deadline/,
      ],
      [["--leader-elect", "--leader-elect-retry-period", "0s"], /--leader-elect-retry-period: must be greater than 0/],
      [["--log-level", "loud"], /--log-level: .*one of fatal, error, warn, info, debug, trace, silent/],
      [["--leader-elect-lease-duration", "5x"], /--leader-elect-lease-duration: "5x" is not a duration like 15s, 500ms or 1m30s/],
      [["--metrics-bind-address", "8080"], /--metrics-bind-address: "8080" is not an address like :8080/],
      [["--no-such-flag"], /Unknown option '--no-such-flag'/],
    ];
    for (const [argv, message] of cases) {
      assert.throws(
        () => parseManagerConfig(argv, {}),
        (err: Error) => err instanceof ConfigError && message.test(err.message),
      );
    }
  });
});

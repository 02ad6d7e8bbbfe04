/**
 * The admission thread, thread side (see thread.ts): sets the plugins up again for their webhooks
 * only, and serves them with its own client and cache until the main thread says stop.
 */
import { monitorEventLoopDelay } from "node:perf_hooks";
import { getHeapStatistics } from "node:v8";
import { parentPort, workerData } from "node:worker_threads";
// The file, not the package index: the index also loads the generated API (slim-client-node.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { Gauge } from "prom-client";
// Modules rather than core/runtime.ts, which also loads the manager (express, inversify).
import { SharedCache } from "../core/cache/shared-cache.ts";
import { Client } from "../core/client/client.ts";
import { RestClient } from "../core/client/rest.ts";
import { createLogger } from "../core/logger.ts";
import { type PluginHost, pluginContext } from "../core/manager/plugin-context.ts";
import type { PluginModule } from "../core/manager/plugin-modules.ts";
import { Metrics } from "../core/metrics/metrics.ts";
import { isPlugin, type Plugin } from "../core/plugin.ts";
import { CertHolder } from "./certs/source.ts";
import { WebhookRegistry } from "./registry.ts";
import { WebhookServer } from "./server.ts";
import type { FromThread, ThreadSettings, ToThread } from "./thread.ts";

/** The thread's event-loop delay, named like prom-client's `nodejs_eventloop_lag_*` (reset at each scrape, as those are). */
const LAG_METRICS = ["p50", "p99", "max"].map((q) => `kubeplug_admission_eventloop_lag_${q}_seconds`);

/** Loads the plugins named in `names` from `modules` (a plugin export, or an array of plugins). */
async function loadPlugins(modules: readonly PluginModule[], names: readonly string[]): Promise<Plugin[]> {
  const found = new Map<string, Plugin>();
  for (const module of modules) {
    const exports = (await import(module.url)) as Record<string, unknown>;
    const value = exports[module.exportName];
    for (const candidate of Array.isArray(value) ? value : [value]) if (isPlugin(candidate)) found.set(candidate.name, candidate);
  }
  return names.map((name) => {
    const plugin = found.get(name);
    if (!plugin) throw new Error(`plugin "${name}" is not exported by ${modules.map((m) => m.url).join(", ")}`);
    return plugin;
  });
}

/** The thread's V8 heap and external memory, named like prom-client's `nodejs_heap_size_total_bytes` and `nodejs_external_memory_bytes`. */
const MEMORY_METRICS = ["kubeplug_admission_heap_size_total_bytes", "kubeplug_admission_external_memory_bytes"];

/** Reports the thread's heap: /metrics of the main thread shows only its own. */
function memoryGauges(metrics: Metrics): void {
  const read = [() => getHeapStatistics().total_heap_size, () => process.memoryUsage().external];
  MEMORY_METRICS.forEach((name, i) => {
    new Gauge({
      name,
      help: `The admission thread's ${["V8 heap size", "external (Buffer) memory"][i]} in bytes.`,
      registers: [metrics.registry],
      collect() {
        this.set(read[i]?.() ?? 0);
      },
    });
  });
}

/** Reports the thread's event-loop delay since the last scrape. */
function lagGauges(metrics: Metrics): void {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const read = [() => delay.percentile(50), () => delay.percentile(99), () => delay.max];
  LAG_METRICS.forEach((name, i) => {
    new Gauge({
      name,
      help: `The ${["median", "99th percentile", "largest"][i]} event-loop delay of the admission thread since the last scrape.`,
      registers: [metrics.registry],
      collect() {
        this.set(delay.count > 0 ? (read[i]?.() ?? 0) / 1e9 : 0);
        if (i === LAG_METRICS.length - 1) delay.reset();
      },
    });
  });
}

/** Runs the thread; see the module comment. */
export async function serveAdmission(): Promise<void> {
  const port = parentPort;
  if (!port) throw new Error("thread-worker.ts runs as the admission thread (a worker), not on its own");
  const send = (message: FromThread) => port.postMessage(message);
  const settings = workerData as ThreadSettings;
  const logger = createLogger(settings.config.logLevel).child({ thread: "admission" });
  const stop = new AbortController();
  let server: WebhookServer;
  let cache: SharedCache;
  const metrics = new Metrics({ processMetrics: false });
  const certs = new CertHolder();
  try {
    const kc = new KubeConfig();
    kc.loadFromString(settings.rest.kubeConfig);
    const rest = await RestClient.create(kc, { userAgent: settings.rest.userAgent });
    cache = new SharedCache(rest, { namespaces: settings.config.namespaces, logger });
    const client = new Client(rest, cache);
    const registry = new WebhookRegistry();
    for (const plugin of await loadPlugins(settings.modules, settings.plugins)) {
      const host: PluginHost = {
        // Controllers run on the main thread; here only their finalizers matter (added at admission).
        registerController: (spec) => {
          if (spec.finalizer) registry.finalizer(spec.kind, spec.finalizer.name);
          return { mistakes: [], handle: { enqueue: () => undefined } };
        },
        addIndex: (kind, name, fn) => cache.addIndex(kind, name, fn, { lazy: true }),
        cache: (kind, scope) => cache.scope(kind, scope, plugin.name),
        webhooks: registry,
        client,
        logger,
        metrics,
        config: settings.config,
        addHealthCheck: () => undefined,
        addReadyCheck: () => undefined,
        add: () => undefined,
      };
      await plugin.setup(pluginContext(host));
    }
    lagGauges(metrics);
    memoryGauges(metrics);
    certs.set(settings.cert);
    server = new WebhookServer({ registry, certs, address: settings.address, client, metrics, logger, ...settings.limits });
  } catch (err) {
    send({ type: "failed", message: err instanceof Error ? err.message : String(err) });
    return;
  }
  port.on("message", (message: ToThread) => {
    if (message.type === "cert") certs.set(message.cert);
    else if (message.type === "stop") stop.abort();
    else if (message.type === "metrics") {
      const names = [...Metrics.WEBHOOK_METRICS, ...LAG_METRICS, ...MEMORY_METRICS];
      void Promise.all(names.map((name) => metrics.registry.getSingleMetricAsString(name))).then((texts) =>
        send({ type: "metrics", id: message.id, text: texts.join("\n") }),
      );
    }
  });
  const running = [cache.start(stop.signal), server.start(stop.signal, (p) => send({ type: "serving", port: p }))];
  await Promise.all(running);
  send({ type: "stopped" });
  port.close();
}

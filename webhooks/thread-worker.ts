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
import { IdleMemoryReducer } from "../core/manager/memory.ts";
import { type PluginHost, pluginContext } from "../core/manager/plugin-context.ts";
import type { PluginModule } from "../core/manager/plugin-modules.ts";
import { Metrics } from "../core/metrics/metrics.ts";
import { isPlugin, type Plugin } from "../core/plugin.ts";
import { CertHolder } from "./certs/source.ts";
import { WebhookRegistry } from "./registry.ts";
import { WebhookServer } from "./server.ts";
import type { FromThread, ThreadSettings, ToThread } from "./thread.ts";

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

/**
 * What the thread reports on the main thread's /metrics beside the webhook metrics, named like
 * prom-client's own: its event-loop delay since the last scrape (`nodejs_eventloop_lag_*`, reset at
 * each scrape as those are), its V8 heap and external memory (the main thread's show only its own).
 */
function threadGauges(metrics: Metrics): string[] {
  const delay = monitorEventLoopDelay({ resolution: 10 });
  delay.enable();
  const lag = (ns: number) => (delay.count > 0 ? ns / 1e9 : 0);
  const gauges: { name: string; help: string; read: () => number }[] = [
    {
      name: "eventloop_lag_p50_seconds",
      help: "median event-loop delay since the last scrape",
      read: () => lag(delay.percentile(50)),
    },
    {
      name: "eventloop_lag_p99_seconds",
      help: "99th percentile event-loop delay since the last scrape",
      read: () => lag(delay.percentile(99)),
    },
    {
      name: "eventloop_lag_max_seconds",
      help: "largest event-loop delay since the last scrape",
      read: () => {
        const max = lag(delay.max);
        delay.reset();
        return max;
      },
    },
    { name: "heap_size_total_bytes", help: "V8 heap size in bytes", read: () => getHeapStatistics().total_heap_size },
    { name: "external_memory_bytes", help: "external (Buffer) memory in bytes", read: () => process.memoryUsage().external },
  ];
  return gauges.map(({ name, help, read }) => {
    const full = `kubeplug_admission_${name}`;
    new Gauge({
      name: full,
      help: `The admission thread's ${help}.`,
      registers: [metrics.registry],
      collect() {
        this.set(read());
      },
    });
    return full;
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
  let threadMetrics: string[] = [];
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
    threadMetrics = threadGauges(metrics);
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
      const names = [...Metrics.WEBHOOK_METRICS, ...threadMetrics];
      void Promise.all(names.map((name) => metrics.registry.getSingleMetricAsString(name))).then((texts) =>
        send({ type: "metrics", id: message.id, text: texts.join("\n") }),
      );
    }
  });
  const running = [cache.start(stop.signal), server.start(stop.signal, (p) => send({ type: "serving", port: p }))];
  // The thread has its own heap, grown by bursts of reviews, and its own event loop to judge idleness by.
  if (settings.config.reduceMemoryWhenIdle) running.push(new IdleMemoryReducer({ logger }).start(stop.signal));
  await Promise.all(running);
  send({ type: "stopped" });
  port.close();
}

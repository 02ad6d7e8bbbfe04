/**
 * The composition root's container (inversify): config, logger, Kubernetes client config, REST
 * client, metrics, shared cache, client, manager and plugins, each bound once as a singleton.
 * Factories (`toDynamicValue`) rather than decorators: TypeScript runs here through Node's type
 * stripping, which has no decorator metadata (FINDINGS.md).
 */
import { existsSync, readFileSync } from "node:fs";
// The file, not the package index: the index also loads the generated API (slim-client-node.ts).
import { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { Container } from "inversify";
import { NamespaceKind, PodKind } from "../builtin-kinds.ts";
import { SharedCache, type SharedCacheOptions } from "../cache/shared-cache.ts";
import { Client } from "../client/client.ts";
import { RestClient } from "../client/rest.ts";
import { createLogger, type Logger } from "../logger.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { Plugin, Runnable } from "../plugin.ts";
import { untilAborted } from "../sleep.ts";
import { ConfigError, type ManagerConfig } from "./config.ts";
import { Manager } from "./manager.ts";

/** Service identifiers of the container. */
export const TOKENS = {
  config: Symbol.for("kubeplug.config"),
  logger: Symbol.for("kubeplug.logger"),
  kubeConfig: Symbol.for("kubeplug.kubeConfig"),
  rest: Symbol.for("kubeplug.rest"),
  metrics: Symbol.for("kubeplug.metrics"),
  cache: Symbol.for("kubeplug.cache"),
  client: Symbol.for("kubeplug.client"),
  manager: Symbol.for("kubeplug.manager"),
  plugins: Symbol.for("kubeplug.plugins"),
} as const;

const SERVICE_ACCOUNT_DIR = "/var/run/secrets/kubernetes.io/serviceaccount";

/**
 * Loads the Kubernetes client configuration the way controller-runtime does: `--kubeconfig`, then
 * `$KUBECONFIG`, then in-cluster, then `~/.kube/config`.
 */
export function loadKubeConfig(path: string | undefined, env: NodeJS.ProcessEnv = process.env): KubeConfig {
  const kc = new KubeConfig();
  if (path) {
    if (!existsSync(path)) throw new ConfigError(`--kubeconfig: file ${path} does not exist`);
    kc.loadFromFile(path);
  } else if (env.KUBECONFIG) {
    kc.loadFromDefault();
  } else if (env.KUBERNETES_SERVICE_HOST && existsSync(`${SERVICE_ACCOUNT_DIR}/token`)) {
    kc.loadFromCluster();
  } else {
    kc.loadFromDefault();
  }
  if (!kc.getCurrentCluster()) {
    throw new ConfigError("no Kubernetes cluster configured: pass --kubeconfig, set KUBECONFIG, or run in a cluster");
  }
  return kc;
}

/** The namespace this process runs in, for the lease and certificates: $POD_NAMESPACE, the SA file, else "default". */
export function ownNamespace(env: NodeJS.ProcessEnv = process.env): string {
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  try {
    return readFileSync(`${SERVICE_ACCOUNT_DIR}/namespace`, "utf8").trim() || "default";
  } catch {
    return "default";
  }
}

/** Inputs of {@link buildContainer}; everything but config has a default. */
export interface ContainerOptions {
  config: ManagerConfig;
  /** Every built-in plugin; `config.plugins` picks among them (default all). */
  plugins?: readonly Plugin[];
  /** Plugins loaded by specifier (`--plugin`): they always run, beside the selected built-ins. */
  extraPlugins?: readonly Plugin[];
  /** Plugins that already failed to load (`--plugin-failure skip`), to be reported with the others. */
  failed?: readonly { name: string; reason: string }[];
  logger?: Logger;
  kubeConfig?: KubeConfig;
  /** Cache tuning (tests shorten watch timeouts). */
  cache?: Omit<SharedCacheOptions, "namespaces" | "logger">;
  /** Lease identity (tests). */
  identity?: string;
  /** Runs before the plugins' setup(): the composition root adds extensions (the webhook server) here. */
  beforeSetup?: (manager: Manager) => void | Promise<void>;
}

/** Builds the container; see the module comment. */
export function buildContainer(options: ContainerOptions): Container {
  const c = new Container({ defaultScope: "Singleton" });
  c.bind<ManagerConfig>(TOKENS.config).toConstantValue({
    ...options.config,
    leaderElectionNamespace: options.config.leaderElectionNamespace ?? ownNamespace(),
  });
  c.bind<Logger>(TOKENS.logger).toDynamicValue(
    (ctx) => options.logger ?? createLogger(ctx.get<ManagerConfig>(TOKENS.config).logLevel),
  );
  c.bind<KubeConfig>(TOKENS.kubeConfig).toDynamicValue(
    (ctx) => options.kubeConfig ?? loadKubeConfig(ctx.get<ManagerConfig>(TOKENS.config).kubeconfig),
  );
  c.bind<Metrics>(TOKENS.metrics).toDynamicValue(() => new Metrics());
  c.bind<RestClient>(TOKENS.rest).toDynamicValue((ctx) =>
    RestClient.create(ctx.get<KubeConfig>(TOKENS.kubeConfig), {
      metrics: ctx.get<Metrics>(TOKENS.metrics).rest(),
      // The pod's name tells replicas apart in the API server's audit log (they share one ServiceAccount).
      userAgent: process.env.POD_NAME ? `kubeplug (${process.env.POD_NAME})` : "kubeplug",
    }),
  );
  c.bind<SharedCache>(TOKENS.cache).toDynamicValue(
    async (ctx) =>
      new SharedCache(await ctx.getAsync<RestClient>(TOKENS.rest), {
        namespaces: ctx.get<ManagerConfig>(TOKENS.config).namespaces,
        logger: ctx.get<Logger>(TOKENS.logger),
        informer: { ...ctx.get<Metrics>(TOKENS.metrics).informer(), ...options.cache?.informer },
      }),
  );
  c.bind<Client>(TOKENS.client).toDynamicValue(
    async (ctx) => new Client(await ctx.getAsync<RestClient>(TOKENS.rest), await ctx.getAsync<SharedCache>(TOKENS.cache)),
  );
  c.bind<readonly Plugin[]>(TOKENS.plugins).toDynamicValue((ctx) => [
    ...selectPlugins(options.plugins ?? [], ctx.get<ManagerConfig>(TOKENS.config).plugins, options.extraPlugins),
    ...(options.extraPlugins ?? []),
  ]);
  c.bind<Manager>(TOKENS.manager).toDynamicValue(
    async (ctx) =>
      new Manager({
        config: ctx.get<ManagerConfig>(TOKENS.config),
        logger: ctx.get<Logger>(TOKENS.logger),
        cache: await ctx.getAsync<SharedCache>(TOKENS.cache),
        client: await ctx.getAsync<Client>(TOKENS.client),
        metrics: ctx.get<Metrics>(TOKENS.metrics),
        ...(options.identity ? { identity: options.identity } : {}),
      }),
  );
  return c;
}

/**
 * Picks the built-in plugins named in `--plugins` (all when absent); unknown names are a ConfigError.
 * Names of plugins loaded by `--plugin` (`loaded`) are accepted and pick nothing: those always run,
 * so a chart can list every plugin it runs in one value.
 */
export function selectPlugins(
  available: readonly Plugin[],
  names: readonly string[] | undefined,
  loaded: readonly Plugin[] = [],
): readonly Plugin[] {
  if (!names) return available;
  const byName = new Map(available.map((p) => [p.name, p]));
  const loadedNames = new Set(loaded.map((p) => p.name));
  const unknown = names.filter((n) => !byName.has(n) && !loadedNames.has(n));
  if (unknown.length > 0) {
    throw new ConfigError(
      `--plugins: unknown plugin ${unknown.map((n) => `"${n}"`).join(", ")}; available: ${[...byName.keys(), ...loadedNames].join(", ") || "none"}`,
    );
  }
  return names.filter((n) => byName.has(n)).map((n) => byName.get(n) as Plugin);
}

/** A plugin whose setup failed; the message names the plugin and the reason. */
export class PluginLoadError extends Error {
  override name = "PluginLoadError";
}

/**
 * Builds the manager and runs every plugin's setup(). A plugin that fails is named in a
 * PluginLoadError; with `--plugin-failure skip` the manager runs without it and reports it (see
 * {@link reportPlugins}).
 */
export async function createManager(options: ContainerOptions): Promise<{ manager: Manager; container: Container }> {
  const container = buildContainer(options);
  const manager = await container.getAsync<Manager>(TOKENS.manager);
  await options.beforeSetup?.(manager);
  const failed = [...(options.failed ?? [])];
  const running: string[] = [];
  for (const plugin of container.get<readonly Plugin[]>(TOKENS.plugins)) {
    try {
      await manager.setupPlugin(plugin);
      running.push(plugin.name);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (manager.config.pluginFailure === "fail") throw new PluginLoadError(`plugin "${plugin.name}" failed to load: ${reason}`);
      failed.push({ name: plugin.name, reason });
    }
  }
  reportPlugins(manager, running, failed);
  return { manager, container };
}

/**
 * Says which plugins run and which were left out: the gauge `kubeplug_plugin_status{plugin,status}`,
 * a passing readiness check whose verbose line names them (failing it would also take the other
 * plugins' webhooks out of service), a warning log, and a Warning Event on the manager's Lease
 * namespace once the manager starts.
 */
function reportPlugins(manager: Manager, running: readonly string[], failed: readonly { name: string; reason: string }[]): void {
  for (const name of running) manager.metrics.pluginStatus.set({ plugin: name, status: "running" }, 1);
  for (const { name, reason } of failed) {
    manager.metrics.pluginStatus.set({ plugin: name, status: "failed" }, 1);
    manager.logger.error({ plugin: name, reason }, "plugin left out");
  }
  manager.health.addReadyCheck("plugins", () =>
    failed.length === 0
      ? `running ${running.join(", ") || "none"}`
      : `running ${running.join(", ") || "none"}; left out: ${failed.map((f) => `${f.name} (failed to load: ${f.reason})`).join("; ")}`,
  );
  if (failed.length > 0) manager.add(pluginFailureEvents(manager, failed));
}

/**
 * Records one Warning Event per left-out plugin: on the manager's own Pod when the chart tells it its
 * name (POD_NAME), else on its namespace, so `kubectl get events` in that namespace shows it.
 */
function pluginFailureEvents(manager: Manager, failed: readonly { name: string; reason: string }[]): Runnable {
  return {
    name: "plugin-failure-events",
    needsLeaderElection: false,
    async start(signal) {
      const namespace = manager.config.leaderElectionNamespace ?? ownNamespace();
      const podName = process.env.POD_NAME;
      const subject = podName
        ? ((await manager.client.reader.get(PodKind, podName, namespace).catch(() => undefined)) ?? undefined)
        : await manager.client.reader.get(NamespaceKind, namespace).catch(() => undefined);
      const recorder = manager.recorder("manager");
      for (const { name, reason } of failed) {
        if (subject)
          recorder.event(
            subject,
            "Warning",
            "PluginLeftOut",
            `plugin "${name}" failed to load and is not running: ${reason}`.slice(0, 1000),
          );
      }
      await untilAborted(signal);
    },
  };
}

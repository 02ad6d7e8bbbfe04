/**
 * The composition root's container (inversify): config, logger, Kubernetes client config, REST
 * client, metrics, shared cache, client, manager and plugins, each bound once as a singleton.
 * Factories (`toDynamicValue`) rather than decorators: TypeScript runs here through Node's type
 * stripping, which has no decorator metadata (FINDINGS.md).
 */
import { existsSync, readFileSync } from "node:fs";
import { KubeConfig } from "@kubernetes/client-node";
import { Container } from "inversify";
import { SharedCache, type SharedCacheOptions } from "../cache/shared-cache.ts";
import { Client } from "../client/client.ts";
import { RestClient } from "../client/rest.ts";
import { createLogger, type Logger } from "../logger.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { Plugin } from "../plugin.ts";
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
  /** Every plugin available; `config.plugins` picks among them (default all). */
  plugins?: readonly Plugin[];
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
      userAgent: "kubeplug",
    }),
  );
  c.bind<SharedCache>(TOKENS.cache).toDynamicValue(
    async (ctx) =>
      new SharedCache(await ctx.getAsync<RestClient>(TOKENS.rest), {
        namespaces: ctx.get<ManagerConfig>(TOKENS.config).namespaces,
        logger: ctx.get<Logger>(TOKENS.logger),
        ...(options.cache?.informer ? { informer: options.cache.informer } : {}),
      }),
  );
  c.bind<Client>(TOKENS.client).toDynamicValue(
    async (ctx) => new Client(await ctx.getAsync<RestClient>(TOKENS.rest), await ctx.getAsync<SharedCache>(TOKENS.cache)),
  );
  c.bind<readonly Plugin[]>(TOKENS.plugins).toDynamicValue((ctx) =>
    selectPlugins(options.plugins ?? [], ctx.get<ManagerConfig>(TOKENS.config).plugins),
  );
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

/** Picks the plugins named in `--plugins` (all when absent); unknown names are a ConfigError. */
export function selectPlugins(available: readonly Plugin[], names: readonly string[] | undefined): readonly Plugin[] {
  if (!names) return available;
  const byName = new Map(available.map((p) => [p.name, p]));
  const unknown = names.filter((n) => !byName.has(n));
  if (unknown.length > 0) {
    throw new ConfigError(
      `--plugins: unknown plugin ${unknown.map((n) => `"${n}"`).join(", ")}; available: ${[...byName.keys()].join(", ") || "none"}`,
    );
  }
  return names.map((n) => byName.get(n) as Plugin);
}

/** A plugin whose setup failed; the message names the plugin and the reason. */
export class PluginLoadError extends Error {
  override name = "PluginLoadError";
}

/** Builds the manager and runs every selected plugin's setup(). */
export async function createManager(options: ContainerOptions): Promise<{ manager: Manager; container: Container }> {
  const container = buildContainer(options);
  const manager = await container.getAsync<Manager>(TOKENS.manager);
  await options.beforeSetup?.(manager);
  for (const plugin of container.get<readonly Plugin[]>(TOKENS.plugins)) {
    try {
      await plugin.setup(manager.pluginContext());
    } catch (err) {
      throw new PluginLoadError(`plugin "${plugin.name}" failed to load: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  return { manager, container };
}

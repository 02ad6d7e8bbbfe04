/**
 * Runs plugins' `setup()` without a cluster, recording what they register: used to generate
 * manifests (webhook configurations) from the same declarations the manager runs. `setup()` must only
 * register things; touching the client or cache here throws a clear error.
 */
import { controllerBuilder } from "../controller/builder.ts";
import { silentLogger } from "../logger.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { ExtensionKey, Plugin, PluginContext } from "../plugin.ts";
import { parseManagerConfig } from "./config.ts";

function unavailable(what: string): never {
  throw new Error(`${what} is not available while generating manifests: setup() should only register controllers and webhooks`);
}

/** Runs each plugin's setup() with a recording context; `extensions` are what `ctx.extension()` returns. */
export async function inspectPlugins(
  plugins: readonly Plugin[],
  extensions: Map<string, unknown>,
): Promise<{ controllers: string[] }> {
  const controllers: string[] = [];
  const { config } = parseManagerConfig([], {});
  for (const plugin of plugins) {
    const ctx: PluginContext = {
      controller: (name) =>
        controllerBuilder(name, () => {
          controllers.push(name);
          return [];
        }),
      get client(): never {
        return unavailable("the client");
      },
      get cache(): never {
        return unavailable("the cache");
      },
      addIndex: () => undefined,
      recorder: () => unavailable("the event recorder"),
      logger: silentLogger(),
      metrics: new Metrics({ processMetrics: false }),
      config,
      addHealthCheck: () => undefined,
      addReadyCheck: () => undefined,
      add: () => undefined,
      extension: <T>(key: ExtensionKey<T>): T => {
        if (!extensions.has(key.name)) throw new Error(`extension "${key.name}" is not available`);
        return extensions.get(key.name) as T;
      },
    };
    await plugin.setup(ctx);
  }
  return { controllers };
}

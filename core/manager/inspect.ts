/**
 * Runs a plugin's `setup()` without a cluster, recording what it declares: used to generate
 * manifests (RBAC from its controllers, webhook configurations from its webhooks) from the same
 * declarations the manager runs. `setup()` must only declare things; touching the client here throws
 * a clear error.
 */
import type { ControllerSpec } from "../controller/builder.ts";
import { silentLogger } from "../logger.ts";
import { Metrics } from "../metrics/metrics.ts";
import type { Plugin } from "../plugin.ts";
import type { WebhookRegistrar } from "../webhook.ts";
import { parseManagerConfig } from "./config.ts";
import { pluginContext } from "./plugin-context.ts";

/** What a plugin declared in setup(). */
export interface PluginDeclarations {
  controllers: ControllerSpec[];
}

/** Runs `plugin.setup()` with a recording context; webhooks go to `webhooks` when given. */
export async function inspectPlugin(plugin: Plugin, webhooks?: WebhookRegistrar): Promise<PluginDeclarations> {
  const controllers: ControllerSpec[] = [];
  const { config } = parseManagerConfig([], {});
  const ctx = pluginContext({
    registerController: (spec) => {
      controllers.push(spec);
      return { mistakes: [], handle: { enqueue: () => undefined } };
    },
    addIndex: () => undefined,
    cache: () => undefined,
    webhooks,
    get client(): never {
      throw new Error(
        "the client is not available while generating manifests: setup() should only declare controllers and webhooks",
      );
    },
    logger: silentLogger(),
    metrics: new Metrics({ processMetrics: false }),
    config,
    addHealthCheck: () => undefined,
    addReadyCheck: () => undefined,
    add: () => undefined,
  });
  await plugin.setup(ctx);
  return { controllers };
}

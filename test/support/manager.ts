/** Runs a manager in the test process against a control plane, on free ports. */
import type { KubeConfig } from "@kubernetes/client-node";
import { buildManager } from "../../cli/compose.ts";
import type { InformerOptions } from "../../core/cache/informer.ts";
import { type Manager, type ManagerExit, type Plugin, parseManagerConfig, silentLogger } from "../../core/runtime.ts";
import type { Webhooks } from "../../webhooks/index.ts";
import { freePort } from "../controlplane/index.ts";

/** A running in-process manager. */
export interface TestManager {
  manager: Manager;
  metricsUrl: string;
  healthUrl: string;
  /** The webhook registry (and server, when enabled with `--webhook-bind-address`). */
  webhooks: Webhooks;
  /** Stops the manager (like SIGTERM) and resolves with its exit. */
  stop(): Promise<ManagerExit>;
}

/** Starts a manager with `plugins`; `flags` are extra command-line flags. */
export async function startTestManager(
  kubeconfigPath: string,
  plugins: readonly Plugin[],
  options: { flags?: string[]; kubeConfig?: KubeConfig; informer?: Omit<InformerOptions, "namespace" | "logger"> } = {},
): Promise<TestManager> {
  const [metricsPort, healthPort] = [await freePort(), await freePort()];
  const { config } = parseManagerConfig(
    [
      // No webhook server unless a test asks for one with its own --webhook-bind-address (last wins).
      "--webhook-bind-address",
      "0",
      "--kubeconfig",
      kubeconfigPath,
      "--metrics-bind-address",
      `127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address",
      `127.0.0.1:${healthPort}`,
      ...(options.flags ?? []),
    ],
    {},
  );
  const { manager, webhooks } = await buildManager({
    config,
    plugins,
    logger: process.env.KUBEPLUG_TEST_LOGS ? undefined : silentLogger(),
    ...(options.kubeConfig ? { kubeConfig: options.kubeConfig } : {}),
    ...(options.informer ? { cache: { informer: options.informer } } : {}),
  });
  const stop = new AbortController();
  const running = manager.start(stop.signal);
  running.catch(() => undefined);
  return {
    manager,
    webhooks,
    metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
    healthUrl: `http://127.0.0.1:${healthPort}`,
    stop: async () => {
      stop.abort();
      return running;
    },
  };
}

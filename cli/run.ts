/**
 * `kubeplug run`: parses manager flags, loads the plugins, runs the manager until SIGTERM/SIGINT.
 * Exit codes: 0 after a clean stop, 1 when start-up or a runnable failed, 2 for bad flags. A lost
 * lease is not an exit: the manager stops its controllers and campaigns again.
 */
import {
  ConfigError,
  type ContainerOptions,
  type Manager,
  managerFlagsHelp,
  type Plugin,
  PluginLoadError,
  parseManagerConfig,
} from "../core/runtime.ts";
import type { Webhooks } from "../webhooks/index.ts";
import { buildManager } from "./compose.ts";
import { loadPlugins } from "./load-plugins.ts";

/** Options of {@link runManager} beyond the flags. */
export interface RunOptions {
  plugins: readonly Plugin[];
  /** Extra container options (tests). */
  container?: Omit<ContainerOptions, "config" | "plugins" | "extraPlugins" | "failed" | "beforeSetup">;
  /** Called with the manager, its webhooks and every plugin it runs, before it starts. */
  beforeStart?: (manager: Manager, webhooks: Webhooks, signal: AbortSignal, plugins: readonly Plugin[]) => void | Promise<void>;
}

/** Runs the manager; resolves with the process exit code. */
export async function runManager(argv: readonly string[], options: RunOptions): Promise<number> {
  let parsed: ReturnType<typeof parseManagerConfig>;
  try {
    parsed = parseManagerConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      process.stderr.write(`kubeplug run: ${err.message}\n\nFlags:\n${managerFlagsHelp()}\n`);
      return 2;
    }
    throw err;
  }
  const stop = new AbortController();
  const onSignal = (signal: NodeJS.Signals) => {
    if (stop.signal.aborted) {
      process.stderr.write(`kubeplug run: second ${signal}: exiting now\n`);
      process.exit(1);
    }
    stop.abort();
  };
  process.on("SIGTERM", onSignal);
  process.on("SIGINT", onSignal);
  try {
    const { loaded, failed } = await loadPlugins(parsed.config.pluginSpecifiers, options.plugins, parsed.config.pluginFailure);
    const { manager, webhooks } = await buildManager({
      config: parsed.config,
      plugins: options.plugins,
      extraPlugins: loaded,
      failed,
      ...options.container,
    });
    await options.beforeStart?.(manager, webhooks, stop.signal, manager.plugins);
    const exit = await manager.start(stop.signal);
    if (exit.error) process.stderr.write(`kubeplug run: ${exit.error}\n`);
    return exit.error ? 1 : 0;
  } catch (err) {
    if (err instanceof ConfigError || err instanceof PluginLoadError) {
      process.stderr.write(`kubeplug run: ${err.message}\n`);
      return err instanceof ConfigError ? 2 : 1;
    }
    process.stderr.write(`kubeplug run: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    return 1;
  } finally {
    process.off("SIGTERM", onSignal);
    process.off("SIGINT", onSignal);
  }
}

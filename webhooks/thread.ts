/**
 * The admission thread, main side. Admission must not queue behind the main event loop, which
 * decodes watch events and runs reconciles: every create and update in the cluster waits on a
 * webhook call, so a burst of reconciles would otherwise show up as admission latency. A worker
 * thread has an event loop of its own; there the webhook server runs with its own copy of the
 * plugins' webhooks (each plugin's setup runs again in the thread, with a host that keeps only
 * webhooks, finalizers, indexes and cache scopes) and its own client, whose cache holds only the
 * kinds a webhook reads (created on the first read, as on the main thread).
 *
 * The main thread keeps the certificates (the self-managed rotation or the watched files) and sends
 * each new one to the thread; it keeps /metrics, where the thread's webhook metrics are appended at
 * each scrape, and /readyz, which passes once the thread serves. A thread that exits while serving
 * is started again; one that fails before serving (a plugin's setup throws there) is a fatal error.
 *
 * Only plugins loaded from a module can be loaded again in the thread: the built-in plugins and
 * those loaded by `--plugin`. A plugin built in memory (a test fixture) keeps admission on the main
 * thread, as `--webhook-thread=false` does.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import { type PluginModule, pluginModuleOf } from "../core/manager/plugin-modules.ts";
import type { Logger, ManagerConfig, Plugin } from "../core/runtime.ts";
import { sleep } from "../core/sleep.ts";
import type { ServingCert } from "./certs/source.ts";

/** What the thread starts from (structured-cloned into it). */
export interface ThreadSettings {
  config: ManagerConfig;
  rest: { kubeConfig: string; userAgent: string };
  /** Modules to load plugins from, each once. */
  modules: PluginModule[];
  /** The plugins to set up, by name, in the main thread's order. */
  plugins: string[];
  address: { host: string; port: number };
  limits: { bodyLimitBytes?: number; headersTimeoutMs?: number; requestTimeoutMs?: number };
  cert: ServingCert;
}

/** Messages to the thread. */
export type ToThread = { type: "cert"; cert: ServingCert } | { type: "metrics"; id: number } | { type: "stop" };
/** Messages from the thread. */
export type FromThread =
  | { type: "serving"; port: number }
  | { type: "metrics"; id: number; text: string }
  | { type: "failed"; message: string }
  | { type: "stopped" };

/** The modules every plugin can be loaded from again, or why one cannot. */
export function threadPlugins(plugins: readonly Plugin[]): { modules: PluginModule[]; names: string[] } | { reason: string } {
  const modules = new Map<string, PluginModule>();
  for (const plugin of plugins) {
    const module = pluginModuleOf(plugin);
    if (!module) return { reason: `plugin "${plugin.name}" was not loaded from a module, so the thread cannot load it` };
    modules.set(`${module.url}#${module.exportName}`, module);
  }
  return { modules: [...modules.values()], names: plugins.map((p) => p.name) };
}

/** The thread's entry module, next to this one (.ts from sources, .js once built). */
const ENTRY = new URL(`./thread-entry${extname(fileURLToPath(import.meta.url))}`, import.meta.url);
/** How long the thread has to close its server and caches on stop before it is terminated. */
const STOP_TIMEOUT_MS = 10_000;
/**
 * The thread's young generation: an admission allocates little, and the main thread's setting
 * (bin/kubeplug's 16 MiB semi-spaces) would cost the thread more RSS for nothing.
 */
const YOUNG_GENERATION_MB = 12;
/**
 * The thread's stack, as the main thread's (node's --stack-size is 984 KiB): a worker's default of
 * 4 MiB lets code that recurses over a review's input (a 20,000-deep object) run four times deeper,
 * and longer, before it fails, and would make admission behave differently with --webhook-thread=false.
 */
const STACK_SIZE_MB = 1;
/** How long a scrape waits for the thread's metrics. */
const METRICS_TIMEOUT_MS = 2_000;

/** See the module comment. */
export class AdmissionThread {
  private readonly settings: ThreadSettings;
  private readonly log: Logger;
  private worker: Worker | undefined;
  private servingPort: number | undefined;
  private nextId = 0;
  private readonly pending = new Map<number, (text: string) => void>();

  constructor(settings: ThreadSettings, logger: Logger) {
    this.settings = settings;
    this.log = logger;
  }

  /** The port the thread serves on, once it serves. */
  get port(): number | undefined {
    return this.servingPort;
  }

  /** Sends a new serving certificate to the thread (and to any thread started later). */
  setCert(cert: ServingCert): void {
    this.settings.cert = cert;
    this.post({ type: "cert", cert });
  }

  /** The thread's webhook metrics in the text format; empty when it does not answer in time. */
  metricsText(): Promise<string> {
    const worker = this.worker;
    if (!worker || this.servingPort === undefined) return Promise.resolve("");
    const id = this.nextId++;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        resolve("");
      }, METRICS_TIMEOUT_MS);
      this.pending.set(id, (text) => {
        clearTimeout(timer);
        resolve(text);
      });
      this.post({ type: "metrics", id });
    });
  }

  private post(message: ToThread): void {
    this.worker?.postMessage(message);
  }

  /**
   * Runs the thread until `signal` aborts; starts it again after an unexpected exit. Rejects when the
   * thread fails before it serves (its error says why).
   */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const outcome = await this.runOnce(signal);
      if (signal.aborted) return;
      if (outcome.failed !== undefined) throw new Error(`the admission thread failed to start: ${outcome.failed}`);
      this.log.error({ exitCode: outcome.exitCode }, "the admission thread exited; starting it again");
      await sleep(1_000, signal);
    }
  }

  private runOnce(signal: AbortSignal): Promise<{ failed?: string; exitCode?: number }> {
    return new Promise((resolve) => {
      const worker = new Worker(ENTRY, {
        workerData: this.settings,
        name: "kubeplug-admission",
        resourceLimits: { maxYoungGenerationSizeMb: YOUNG_GENERATION_MB, stackSizeMb: STACK_SIZE_MB },
      });
      this.worker = worker;
      let failed: string | undefined;
      let served = false;
      let stopTimer: NodeJS.Timeout | undefined;
      const onAbort = () => {
        worker.postMessage({ type: "stop" } satisfies ToThread);
        stopTimer = setTimeout(() => void worker.terminate(), STOP_TIMEOUT_MS);
      };
      worker.on("message", (message: FromThread) => {
        switch (message.type) {
          case "serving":
            served = true;
            this.servingPort = message.port;
            this.log.info({ port: message.port }, "the admission thread serves");
            break;
          case "metrics":
            this.pending.get(message.id)?.(message.text);
            this.pending.delete(message.id);
            break;
          case "failed":
            failed = message.message;
            break;
          case "stopped":
            void worker.terminate();
            break;
        }
      });
      worker.on("error", (err) => {
        if (!served) failed ??= err.stack ?? err.message;
        this.log.error({ err: err.stack ?? err.message }, "the admission thread threw");
      });
      worker.once("exit", (exitCode) => {
        clearTimeout(stopTimer);
        signal.removeEventListener("abort", onAbort);
        this.worker = undefined;
        this.servingPort = undefined;
        for (const reply of this.pending.values()) reply("");
        this.pending.clear();
        if (!served && failed === undefined && !signal.aborted) failed = `it exited with code ${exitCode} before serving`;
        resolve(failed !== undefined ? { failed } : { exitCode });
      });
      if (signal.aborted) onAbort();
      else signal.addEventListener("abort", onAbort, { once: true });
    });
  }
}

/**
 * The manager runs everything a kubeplug process hosts (controller-runtime's manager):
 * servers, the shared cache and non-leader runnables on every replica; controllers only on the
 * leader. Stopping (SIGTERM/SIGINT in the CLI) stops taking work, lets in-flight reconciles finish
 * within `--graceful-shutdown-timeout`, releases the lease, closes the cache and the servers.
 */
import type { Server } from "node:http";
import express from "express";
import type { SharedCache } from "../cache/shared-cache.ts";
import type { Client } from "../client/client.ts";
import { type ControllerSpec, controllerBuilder, type ForStep } from "../controller/builder.ts";
import { Controller } from "../controller/controller.ts";
import { ApiEventRecorder, type EventRecorder } from "../events/recorder.ts";
import { LeaderElector } from "../leader/elector.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ExtensionKey, PluginContext, Runnable } from "../plugin.ts";
import type { ManagerConfig } from "./config.ts";
import { type Check, close, HealthChecks, listen } from "./health.ts";

/** The manager's collaborators (built by the container; tests may build them directly). */
export interface ManagerDeps {
  config: ManagerConfig;
  logger: Logger;
  cache: SharedCache;
  client: Client;
  metrics: Metrics;
  /** Identity for the lease; default host name + random suffix. */
  identity?: string;
}

/** How a manager run ended. */
export interface ManagerExit {
  /** True when leadership was lost (the CLI exits non-zero then, as controller-runtime does). */
  lostLease: boolean;
  /** Set when a runnable failed and stopped the manager. */
  error?: string;
}

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | "timeout"> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(() => resolve("timeout"), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });

/** See the module comment. */
export class Manager {
  readonly config: ManagerConfig;
  readonly logger: Logger;
  readonly cache: SharedCache;
  readonly client: Client;
  readonly metrics: Metrics;
  readonly health = new HealthChecks();
  private readonly runnables: Runnable[] = [];
  private readonly controllers = new Map<string, Controller>();
  private readonly recorders = new Map<string, EventRecorder>();
  private readonly extensions = new Map<string, unknown>();
  private readonly identity: string | undefined;
  private elector: LeaderElector | undefined;
  private started = false;

  constructor(deps: ManagerDeps) {
    this.config = deps.config;
    this.logger = deps.logger;
    this.cache = deps.cache;
    this.client = deps.client;
    this.metrics = deps.metrics;
    this.identity = deps.identity;
    this.health.addHealthCheck("ping", () => undefined);
    this.health.addReadyCheck("informers", () => {
      if (!this.cache.hasSynced) throw new Error("informer caches have not synced yet");
    });
  }

  /** Adds a runnable (servers, custom loops). */
  add(runnable: Runnable): void {
    if (this.started) throw new Error(`cannot add "${runnable.name}" after the manager started`);
    this.runnables.push(runnable);
  }

  /** Starts a controller builder; the controller runs on the leader. */
  controller(name: string): ForStep {
    return controllerBuilder(name, (spec) => this.register(spec));
  }

  private register(spec: ControllerSpec): string[] {
    if (this.controllers.has(spec.name)) return [`a controller named "${spec.name}" already exists`];
    const controller = new Controller({
      name: spec.name,
      sources: spec.sources,
      reconcile: spec.reconcile,
      cache: this.cache,
      client: this.client,
      recorder: this.recorder(spec.name),
      metrics: this.metrics,
      logger: this.logger,
      maxConcurrentReconciles: spec.settings.maxConcurrentReconciles ?? this.config.maxConcurrentReconciles,
      ...(spec.settings.rateLimiter ? { rateLimiter: spec.settings.rateLimiter } : {}),
    });
    // Informers are created now so the cache starts (and syncs) them with the manager.
    for (const source of spec.sources) this.cache.informer(source.kind);
    this.controllers.set(spec.name, controller);
    this.add(controller);
    return [];
  }

  /** The controller registered under `name` (tests, plugins enqueuing by hand). */
  getController(name: string): Controller | undefined {
    return this.controllers.get(name);
  }

  /** An event recorder reporting as `kubeplug/<component>`. */
  recorder(component: string): EventRecorder {
    let r = this.recorders.get(component);
    if (!r) {
      r = new ApiEventRecorder(this.client, `kubeplug/${component}`, this.logger.child({ component }));
      this.recorders.set(component, r);
    }
    return r;
  }

  /** Registers an extension plugins can reach through `ctx.extension(key)`. */
  setExtension<T>(key: ExtensionKey<T>, value: T): void {
    this.extensions.set(key.name, value);
  }

  /** The context handed to a plugin's setup(). */
  pluginContext(): PluginContext {
    return {
      controller: (name) => this.controller(name),
      client: this.client,
      cache: this.cache,
      addIndex: (kind, name, fn) => this.cache.addIndex(kind, name, fn),
      recorder: (component) => this.recorder(component),
      logger: this.logger,
      metrics: this.metrics,
      config: this.config,
      addHealthCheck: (name: string, check: Check) => this.health.addHealthCheck(name, check),
      addReadyCheck: (name: string, check: Check) => this.health.addReadyCheck(name, check),
      add: (runnable) => this.add(runnable),
      extension: <T>(key: ExtensionKey<T>): T => {
        if (!this.extensions.has(key.name)) throw new Error(`extension "${key.name}" is not available in this manager`);
        return this.extensions.get(key.name) as T;
      },
    };
  }

  /** Whether this replica currently runs the controllers. */
  get isLeader(): boolean {
    return this.config.leaderElect ? (this.elector?.isLeader ?? false) : this.started;
  }

  /** Runs until `signal` aborts (or the lease is lost); see the module comment. */
  async start(signal: AbortSignal): Promise<ManagerExit> {
    if (this.started) throw new Error("a manager starts once");
    this.started = true;
    const log = this.logger;
    const servers: Server[] = [];
    const { metricsBindAddress, healthProbeBindAddress } = this.config;
    if (metricsBindAddress) {
      const app = express();
      app.disable("x-powered-by");
      app.get("/metrics", async (_req, res) => {
        res.type(this.metrics.registry.contentType).send(await this.metrics.registry.metrics());
      });
      servers.push(await listen(app, metricsBindAddress));
      log.info({ address: `${metricsBindAddress.host}:${metricsBindAddress.port}` }, "serving metrics");
    }
    if (healthProbeBindAddress) {
      servers.push(await listen(this.health.app(), healthProbeBindAddress));
      log.info({ address: `${healthProbeBindAddress.host}:${healthProbeBindAddress.port}` }, "serving health probes");
    }

    // A runnable that fails (a port in use, a bad certificate directory) stops the whole manager
    // with an error instead of leaving a half-working process or an unhandled rejection.
    const failed = new AbortController();
    let failure: string | undefined;
    const guard = (r: Runnable, runSignal: AbortSignal) =>
      r.start(runSignal).catch((err: unknown) => {
        failure ??= `${r.name} failed: ${err instanceof Error ? err.message : String(err)}`;
        log.error({ err: String(err), runnable: r.name }, "runnable failed; stopping the manager");
        failed.abort();
      });
    signal = AbortSignal.any([signal, failed.signal]);
    const cacheStop = new AbortController();
    const cacheRun = this.cache.start(cacheStop.signal);
    const everyReplica = new AbortController();
    const replicaRuns = this.runnables.filter((r) => !r.needsLeaderElection).map((r) => guard(r, everyReplica.signal));
    const leaderRunnables = this.runnables.filter((r) => r.needsLeaderElection);
    const runLeaderRunnables = async (leadSignal: AbortSignal) => {
      const runs = leaderRunnables.map((r) => guard(r, leadSignal));
      await new Promise<void>((resolve) => {
        if (leadSignal.aborted) resolve();
        leadSignal.addEventListener("abort", () => resolve(), { once: true });
      });
      const result = await withTimeout(Promise.all(runs), this.config.gracefulShutdownTimeoutMs);
      if (result === "timeout")
        log.warn({ timeoutMs: this.config.gracefulShutdownTimeoutMs }, "in-flight reconciles did not finish in time");
    };

    let lostLease = false;
    if (this.config.leaderElect) {
      this.elector = new LeaderElector({
        name: this.config.leaderElectionId,
        namespace: this.config.leaderElectionNamespace ?? "default",
        client: this.client,
        logger: log,
        metrics: this.metrics,
        leaseDurationMs: this.config.leaseDurationMs,
        renewDeadlineMs: this.config.renewDeadlineMs,
        retryPeriodMs: this.config.retryPeriodMs,
        ...(this.identity ? { identity: this.identity } : {}),
      });
      log.info({ identity: this.elector.identity }, "waiting for the leader lease");
      lostLease = await this.elector.run(signal, runLeaderRunnables);
    } else {
      await runLeaderRunnables(signal);
    }
    log.info({ lostLease }, "stopping");
    everyReplica.abort();
    await withTimeout(Promise.all(replicaRuns), this.config.gracefulShutdownTimeoutMs);
    for (const r of this.recorders.values()) await withTimeout(r.flush(), 2_000);
    cacheStop.abort();
    await cacheRun;
    await Promise.all(servers.map(close));
    await this.client.rest.close();
    log.info("stopped");
    return { lostLease, ...(failure ? { error: failure } : {}) };
  }
}

/**
 * The manager runs everything a kubeplug process hosts (controller-runtime's manager):
 * servers, the shared cache and non-leader runnables on every replica; controllers only on the
 * leader. Stopping (SIGTERM/SIGINT in the CLI) stops taking work, lets in-flight reconciles finish
 * within `--graceful-shutdown-timeout`, releases the lease, closes the cache and the servers.
 */
import type { Server } from "node:http";
import express from "express";
import type { CacheScope, SharedCache } from "../cache/shared-cache.ts";
import { type Client, FencedError } from "../client/client.ts";
import type { ControllerHandle, ControllerSpec } from "../controller/builder.ts";
import { Controller } from "../controller/controller.ts";
import { objectReconciler } from "../controller/reconcile-context.ts";
import { ApiEventRecorder, EventQueue, type EventRecorder } from "../events/recorder.ts";
import { type Kind, kindId } from "../kinds.ts";
import { LeaderElector } from "../leader/elector.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import type { ObjectKey } from "../object.ts";
import type { Plugin, Runnable } from "../plugin.ts";
import { untilAborted } from "../sleep.ts";
import type { WebhookRegistrar } from "../webhook.ts";
import type { ManagerConfig } from "./config.ts";
import { close, HealthChecks, listen } from "./health.ts";
import { IdleMemoryReducer } from "./memory.ts";
import { type PluginHost, pluginContext } from "./plugin-context.ts";

/** The manager's collaborators (built by the container; tests may build them directly). */
export interface ManagerDeps {
  config: ManagerConfig;
  logger: Logger;
  cache: SharedCache;
  client: Client;
  metrics: Metrics;
  /** Identity for the lease; default $POD_NAME, else host name + random suffix. */
  identity?: string;
}

/** How a manager run ended: a stop (SIGTERM) or a fatal error; a lost lease is neither. */
export interface ManagerExit {
  /** Set when a runnable failed and stopped the manager. */
  error?: string;
}

/** How long shutdown waits for queued Events to be written. */
const EVENT_FLUSH_TIMEOUT_MS = 5_000;

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
  /**
   * The client of controllers and plugins. With leader election its writes are fenced by the lease:
   * refused ({@link FencedError}) unless this replica leads and renewed within the renew deadline.
   */
  readonly controllerClient: Client;
  readonly metrics: Metrics;
  readonly health = new HealthChecks();
  /** The plugins whose setup completed, in order. */
  readonly plugins: Plugin[] = [];
  private readonly runnables: Runnable[] = [];
  private readonly controllers = new Map<string, Controller>();
  private readonly recorders = new Map<string, EventRecorder>();
  /** The recorders' Event writes, one at a time (see core/events/recorder.ts). */
  private readonly eventQueue: EventQueue;
  private webhooks: WebhookRegistrar | undefined;
  private readonly identity: string | undefined;
  private elector: LeaderElector | undefined;
  private started = false;

  constructor(deps: ManagerDeps) {
    this.config = deps.config;
    this.logger = deps.logger;
    this.cache = deps.cache;
    this.client = deps.client;
    this.metrics = deps.metrics;
    this.controllerClient = this.config.leaderElect ? deps.client.fenced(() => this.assertMayWrite()) : deps.client;
    this.identity = deps.identity;
    this.eventQueue = new EventQueue(this.logger.child({ component: "events" }), {
      onDropped: () => this.metrics.eventsDropped.inc(),
      // Event writes yield to the controllers' own (see EventQueue).
      holdWhile: () => {
        for (const controller of this.controllers.values()) if (controller.busy) return true;
        return false;
      },
    });
    if (this.config.reduceMemoryWhenIdle) this.add(new IdleMemoryReducer({ logger: this.logger.child({ component: "memory" }) }));
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

  private registerController(spec: ControllerSpec): ControllerHandle {
    const controller = new Controller({
      name: spec.name,
      kind: spec.kind,
      sources: spec.sources,
      reconcile: objectReconciler(spec, {
        client: this.controllerClient,
        // Events are notes, not state: written unfenced, as client-go's recorder is, so the ones a
        // term leaves queued (they wait for quiet controllers) are still written after the lease
        // is lost or released, and the fence's counter counts only refused state writes.
        recorder: this.recorder(spec.name),
      }),
      cache: this.cache,
      metrics: this.metrics,
      logger: this.logger,
      maxConcurrentReconciles: spec.settings.maxConcurrentReconciles ?? this.config.maxConcurrentReconciles,
      ...(spec.settings.rateLimiter ? { rateLimiter: spec.settings.rateLimiter } : {}),
    });
    // Informers are created now so the cache starts (and syncs) them with the manager.
    for (const source of spec.sources) this.cache.informer(source.kind);
    this.controllers.set(spec.name, controller);
    this.add(controller);
    return controller;
  }

  /**
   * Runs a plugin's setup() and adopts what it declared only when it completes: a setup that throws
   * leaves nothing behind (no controller, informer, index, webhook or runnable), so the manager can
   * run without that plugin (`--plugin-failure skip`).
   */
  async setupPlugin(plugin: Plugin): Promise<void> {
    const staged: (() => void)[] = [];
    const names = new Set<string>();
    const registrar = this.webhooks;
    const by = `plugin "${plugin.name}"`;
    // Cache scopes apply before the plugin's controllers (which create informers); all are checked
    // before any applies, so a plugin that fails setup leaves no scope behind.
    const scopes: { kind: Kind; scope: CacheScope }[] = [];
    const host: PluginHost = {
      registerController: (spec) => {
        if (this.controllers.has(spec.name) || names.has(spec.name)) {
          return { mistakes: [`a controller named "${spec.name}" already exists`], handle: { enqueue: () => undefined } };
        }
        const mistakes = spec.sources.flatMap(({ kind, role }) => {
          const declared = scopes.find((s) => kindId(s.kind) === kindId(kind)) ?? this.cache.scopeOf(kind);
          if (!declared) return [];
          if (declared.scope.uncached)
            return [`${role}(${kind.kind}): ${kind.kind} is declared uncached, so it cannot be watched`];
          if (declared.scope.metadataOnly && !kind.metadataOnly)
            return [
              `${role}(${kind.kind}): ${kind.kind} is cached metadata only; ${role} the kind ctx.cache returned, whose objects are typed so`,
            ];
          const owner = "by" in declared ? declared.by : by;
          return owner === by
            ? []
            : [
                `${role}(${kind.kind}): the cache of ${kind.kind} is scoped by ${owner}, which would hide objects from this controller`,
              ];
        });
        if (mistakes.length) return { mistakes, handle: { enqueue: () => undefined } };
        names.add(spec.name);
        let target: ControllerHandle | undefined;
        const early: ObjectKey[] = [];
        staged.push(() => {
          target = this.registerController(spec);
          for (const key of early) target.enqueue(key);
          if (spec.finalizer) registrar?.finalizer(spec.kind, spec.finalizer.name);
        });
        return { mistakes: [], handle: { enqueue: (key) => (target ? target.enqueue(key) : early.push(key)) } };
      },
      addIndex: (kind, name, fn) => staged.push(() => this.cache.addIndex(kind, name, fn)),
      cache: (kind, scope) => {
        this.cache.scope(kind, scope, by, { check: true });
        scopes.push({ kind, scope });
      },
      webhooks: registrar && {
        defaulter: (kind, fn, options) => staged.push(() => registrar.defaulter(kind, fn, options)),
        validator: (kind, fn, options) => staged.push(() => registrar.validator(kind, fn, options)),
        finalizer: (kind, name) => staged.push(() => registrar.finalizer(kind, name)),
      },
      client: this.controllerClient,
      logger: this.logger,
      metrics: this.metrics,
      config: this.config,
      addHealthCheck: (name, check) => staged.push(() => this.health.addHealthCheck(name, check)),
      addReadyCheck: (name, check) => staged.push(() => this.health.addReadyCheck(name, check)),
      add: (runnable) => staged.push(() => this.add(runnable)),
    };
    await plugin.setup(pluginContext(host));
    for (const { kind, scope } of scopes) this.cache.scope(kind, scope, by, { check: true });
    for (const { kind, scope } of scopes) this.cache.scope(kind, scope, by);
    for (const adopt of staged) adopt();
    this.plugins.push(plugin);
  }

  /** The controller registered under `name` (tests). */
  getController(name: string): Controller | undefined {
    return this.controllers.get(name);
  }

  /** An event recorder reporting as `kubeplug/<component>`, writing through `client` (default unfenced). */
  recorder(component: string, client: Client = this.client): EventRecorder {
    let r = this.recorders.get(component);
    if (!r) {
      r = new ApiEventRecorder(client, `kubeplug/${component}`, this.logger.child({ component }), { queue: this.eventQueue });
      this.recorders.set(component, r);
    }
    return r;
  }

  /** Where plugins' `ctx.webhooks(kind)` declarations go (set by the composition root). */
  setWebhooks(registrar: WebhookRegistrar): void {
    this.webhooks = registrar;
  }

  /** The write fence of {@link controllerClient}. */
  private assertMayWrite(): AbortSignal | undefined {
    if (this.elector?.mayWrite()) return this.elector.termSignal;
    this.metrics.fencedWrites.inc();
    throw new FencedError(
      `write refused: this replica does not hold the leader lease "${this.config.leaderElectionId}" or has not renewed it within the renew deadline (${this.config.renewDeadlineMs} ms), so another replica may be leading`,
    );
  }

  /** Whether this replica currently runs the controllers. */
  get isLeader(): boolean {
    return this.config.leaderElect ? (this.elector?.isLeader ?? false) : this.started;
  }

  /** Runs until `signal` aborts (or the lease is lost); see the module comment. */
  async start(signal: AbortSignal): Promise<ManagerExit> {
    if (this.started) throw new Error("a manager starts once");
    this.started = true;
    const servers = await this.startServers();
    // A runnable that fails (a port in use, a bad certificate directory) stops the whole manager
    // with an error instead of leaving a half-working process or an unhandled rejection.
    const failed = new AbortController();
    let failure: string | undefined;
    const guard = (r: Runnable, runSignal: AbortSignal) =>
      r.start(runSignal).catch((err: unknown) => {
        failure ??= `${r.name} failed: ${err instanceof Error ? err.message : String(err)}`;
        this.logger.error({ err: String(err), runnable: r.name }, "runnable failed; stopping the manager");
        failed.abort();
      });
    const stop = AbortSignal.any([signal, failed.signal]);
    const cacheStop = new AbortController();
    const cacheRun = this.cache.start(cacheStop.signal);
    const everyReplica = new AbortController();
    const replicaRuns = this.runnables.filter((r) => !r.needsLeaderElection).map((r) => guard(r, everyReplica.signal));
    await this.runLeaderRunnables(stop, guard);
    this.logger.info("stopping");
    everyReplica.abort();
    await withTimeout(Promise.all(replicaRuns), this.config.gracefulShutdownTimeoutMs);
    await this.shutDown(servers, cacheStop, cacheRun);
    return failure ? { error: failure } : {};
  }

  /** Serves /metrics and the health probes on their own ports (every replica). */
  private async startServers(): Promise<Server[]> {
    const servers: Server[] = [];
    const { metricsBindAddress, healthProbeBindAddress } = this.config;
    if (metricsBindAddress) {
      const app = express();
      app.disable("x-powered-by");
      app.get("/metrics", async (_req, res) => {
        res.type(this.metrics.registry.contentType).send(await this.metrics.text());
      });
      servers.push(await listen(app, metricsBindAddress));
      this.logger.info({ address: `${metricsBindAddress.host}:${metricsBindAddress.port}` }, "serving metrics");
    }
    if (healthProbeBindAddress) {
      servers.push(await listen(this.health.app(), healthProbeBindAddress));
      this.logger.info({ address: `${healthProbeBindAddress.host}:${healthProbeBindAddress.port}` }, "serving health probes");
    }
    return servers;
  }

  /**
   * Runs the controllers while this replica leads (at once without leader election) until `signal`
   * aborts; in-flight reconciles get the graceful-shutdown timeout. A lost lease ends a term, not the
   * manager.
   */
  private async runLeaderRunnables(
    signal: AbortSignal,
    guard: (r: Runnable, runSignal: AbortSignal) => Promise<void>,
  ): Promise<void> {
    const leaderRunnables = this.runnables.filter((r) => r.needsLeaderElection);
    const lead = async (leadSignal: AbortSignal) => {
      const runs = leaderRunnables.map((r) => guard(r, leadSignal));
      await untilAborted(leadSignal);
      const result = await withTimeout(Promise.all(runs), this.config.gracefulShutdownTimeoutMs);
      if (result === "timeout")
        this.logger.warn({ timeoutMs: this.config.gracefulShutdownTimeoutMs }, "in-flight reconciles did not finish in time");
    };
    if (!this.config.leaderElect) {
      await lead(signal);
      return;
    }
    this.elector = new LeaderElector({
      name: this.config.leaderElectionId,
      namespace: this.config.leaderElectionNamespace ?? "default",
      client: this.client,
      logger: this.logger,
      metrics: this.metrics,
      leaseDurationMs: this.config.leaseDurationMs,
      renewDeadlineMs: this.config.renewDeadlineMs,
      retryPeriodMs: this.config.retryPeriodMs,
      ...(this.identity ? { identity: this.identity } : {}),
    });
    // Losing the lease stops the controllers only: the caches and the webhook server keep running
    // (admission does not depend on leadership), and the manager campaigns again.
    for (;;) {
      this.logger.info({ identity: this.elector.identity }, "waiting for the leader lease");
      const lost = await this.elector.run(signal, lead);
      if (!lost || signal.aborted) return;
      this.metrics.leaseLosses.inc({ name: this.config.leaderElectionId });
      this.logger.warn("lost the leader lease: controllers stopped; caches and webhooks keep serving; campaigning again");
    }
  }

  /** Flushes pending Events, stops the cache, closes the servers and the API connections. */
  private async shutDown(servers: Server[], cacheStop: AbortController, cacheRun: Promise<void>): Promise<void> {
    // Every recorder shares the one queue; its held Events go out now, within a bound.
    if ((await withTimeout(this.eventQueue.flush(), EVENT_FLUSH_TIMEOUT_MS)) === "timeout")
      this.logger.warn({ timeoutMs: EVENT_FLUSH_TIMEOUT_MS }, "Events still queued at shutdown were not written");
    cacheStop.abort();
    await cacheRun;
    await Promise.all(servers.map(close));
    await this.client.rest.close();
    this.logger.info("stopped");
  }
}

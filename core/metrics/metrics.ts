/**
 * The process's Prometheus registry with controller-runtime's and client-go's metric names and labels,
 * so existing dashboards and alerts work unchanged. One registry per manager (tests run several).
 */
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";
import type { RestMetrics } from "../client/rest.ts";
import type { WorkQueueGauges, WorkQueueMetrics } from "../controller/workqueue.ts";

// controller-runtime's reconcile_time_seconds buckets.
const RECONCILE_BUCKETS = [
  0.005, 0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.35, 0.4, 0.45, 0.5, 0.6, 0.7, 0.8, 0.9, 1, 1.25, 1.5, 1.75, 2, 2.5, 3,
  3.5, 4, 4.5, 5, 6, 7, 8, 9, 10, 15, 20, 25, 30, 40, 50, 60,
];
// client-go workqueue: exponential 10ns .. 10s.
const QUEUE_BUCKETS = Array.from({ length: 10 }, (_, i) => 1e-8 * 10 ** i);
const LATENCY_BUCKETS = [0.005, 0.025, 0.1, 0.25, 0.5, 1, 2, 4, 8, 15, 30, 60];
const WEBHOOK_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** See the module comment. */
export class Metrics {
  readonly registry = new Registry();
  readonly reconcileTotal = new Counter({
    name: "controller_runtime_reconcile_total",
    help: "Total number of reconciliations per controller",
    labelNames: ["controller", "result"] as const,
    registers: [this.registry],
  });
  readonly reconcileErrors = new Counter({
    name: "controller_runtime_reconcile_errors_total",
    help: "Total number of reconciliation errors per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly terminalReconcileErrors = new Counter({
    name: "controller_runtime_terminal_reconcile_errors_total",
    help: "Total number of terminal reconciliation errors per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly reconcilePanics = new Counter({
    name: "controller_runtime_reconcile_panics_total",
    help: "Total number of reconciliation panics (unexpected throws of non-Error values) per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly reconcileTime = new Histogram({
    name: "controller_runtime_reconcile_time_seconds",
    help: "Length of time per reconciliation per controller",
    labelNames: ["controller"] as const,
    buckets: RECONCILE_BUCKETS,
    registers: [this.registry],
  });
  readonly maxConcurrentReconciles = new Gauge({
    name: "controller_runtime_max_concurrent_reconciles",
    help: "Maximum number of concurrent reconciles per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly activeWorkers = new Gauge({
    name: "controller_runtime_active_workers",
    help: "Number of currently used workers per controller",
    labelNames: ["controller"] as const,
    registers: [this.registry],
  });
  readonly restRequests = new Counter({
    name: "rest_client_requests_total",
    help: "Number of HTTP requests, partitioned by status code, method, and host.",
    labelNames: ["code", "method", "host"] as const,
    registers: [this.registry],
  });
  readonly restLatency = new Histogram({
    name: "rest_client_request_duration_seconds",
    help: "Request latency in seconds. Broken down by verb and host.",
    labelNames: ["verb", "host"] as const,
    buckets: LATENCY_BUCKETS,
    registers: [this.registry],
  });
  readonly pluginStatus = new Gauge({
    name: "kubeplug_plugin_status",
    help: "1 for each plugin with its status: running, or failed (left out with --plugin-failure skip).",
    labelNames: ["plugin", "status"] as const,
    registers: [this.registry],
  });
  readonly leaseLosses = new Counter({
    name: "kubeplug_leader_election_lost_total",
    help: "Times this replica lost the leader lease (its controllers stopped; it campaigned again).",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });
  readonly watchStalls = new Counter({
    name: "kubeplug_informer_watch_stalls_total",
    help: "Watches that brought nothing for 15 s past their server-side timeout and were replaced, by kind.",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly relists = new Counter({
    name: "kubeplug_informer_relists_total",
    help: "Full relists of a kind after its resourceVersion expired (410 Gone).",
    labelNames: ["kind"] as const,
    registers: [this.registry],
  });
  readonly fencedWrites = new Counter({
    name: "kubeplug_leader_fenced_writes_total",
    help: "Writes of controllers refused because this replica did not hold a lease renewed within the renew deadline.",
    registers: [this.registry],
  });
  readonly eventsDropped = new Counter({
    name: "kubeplug_events_dropped_total",
    help: "Events not written because 1,000 were already waiting to be written (a burst of reconciles).",
    registers: [this.registry],
  });
  readonly leaderStatus = new Gauge({
    name: "leader_election_master_status",
    help: "Gauge of if the reporting system is master of the relevant lease, 0 indicates backup, 1 indicates master. 'name' is the string used to identify the lease.",
    labelNames: ["name"] as const,
    registers: [this.registry],
  });
  readonly webhookRequests = new Counter({
    name: "controller_runtime_webhook_requests_total",
    help: "Total number of admission requests by HTTP status code.",
    labelNames: ["webhook", "code"] as const,
    registers: [this.registry],
  });
  readonly webhookLatency = new Histogram({
    name: "controller_runtime_webhook_latency_seconds",
    help: "Histogram of the latency of processing admission requests",
    labelNames: ["webhook"] as const,
    buckets: WEBHOOK_BUCKETS,
    registers: [this.registry],
  });
  readonly webhookInFlight = new Gauge({
    name: "controller_runtime_webhook_requests_in_flight",
    help: "Current number of admission requests being served.",
    labelNames: ["webhook"] as const,
    registers: [this.registry],
  });

  private readonly queues = new Map<string, WorkQueueGauges>();
  private readonly queueDepth = new Gauge({
    name: "workqueue_depth",
    help: "Current depth of workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
    collect: () => this.collectQueues((name, g) => this.queueDepth.set({ name, controller: name }, g.depth())),
  });
  private readonly queueAdds = new Counter({
    name: "workqueue_adds_total",
    help: "Total number of adds handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  private readonly queueDuration = new Histogram({
    name: "workqueue_queue_duration_seconds",
    help: "How long in seconds an item stays in workqueue before being requested",
    labelNames: ["name", "controller"] as const,
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });
  private readonly workDuration = new Histogram({
    name: "workqueue_work_duration_seconds",
    help: "How long in seconds processing an item from workqueue takes.",
    labelNames: ["name", "controller"] as const,
    buckets: QUEUE_BUCKETS,
    registers: [this.registry],
  });
  private readonly queueRetries = new Counter({
    name: "workqueue_retries_total",
    help: "Total number of retries handled by workqueue",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
  });
  private readonly unfinishedWork = new Gauge({
    name: "workqueue_unfinished_work_seconds",
    help: "How many seconds of work has been done that is in progress and hasn't been observed by work_duration. Large values indicate stuck threads.",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
    collect: () =>
      this.collectQueues((name, g) => this.unfinishedWork.set({ name, controller: name }, g.unfinishedWorkSeconds())),
  });
  private readonly longestRunning = new Gauge({
    name: "workqueue_longest_running_processor_seconds",
    help: "How many seconds has the longest running processor for workqueue been running.",
    labelNames: ["name", "controller"] as const,
    registers: [this.registry],
    collect: () =>
      this.collectQueues((name, g) => this.longestRunning.set({ name, controller: name }, g.longestRunningProcessorSeconds())),
  });

  /** Metrics kept elsewhere (another thread), appended to the exposition; see {@link delegate}. */
  private readonly delegated: (() => Promise<string>)[] = [];

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Names of the webhook server's metrics (they move with the server to the admission thread). */
  static readonly WEBHOOK_METRICS = [
    "controller_runtime_webhook_requests_total",
    "controller_runtime_webhook_latency_seconds",
    "controller_runtime_webhook_requests_in_flight",
  ] as const;

  /**
   * Hands the metrics `names` to another source: they leave this registry (no series twice in one
   * exposition) and `text()` appends what `source` returns, in the text format, at each scrape.
   */
  delegate(names: readonly string[], source: () => Promise<string>): void {
    for (const name of names) this.registry.removeSingleMetric(name);
    this.delegated.push(source);
  }

  /** The whole exposition (this registry, then delegated metrics) for /metrics. */
  async text(): Promise<string> {
    const own = await this.registry.metrics();
    if (this.delegated.length === 0) return own;
    const more = await Promise.all(this.delegated.map((source) => source().catch(() => "")));
    const text = [own, ...more].filter(Boolean).join("\n");
    return text.endsWith("\n") ? text : `${text}\n`;
  }

  private collectQueues(each: (name: string, gauges: WorkQueueGauges) => void): void {
    for (const [name, gauges] of this.queues) each(name, gauges);
  }

  /** The `workqueue_*` hook for the queue of controller `name`. */
  workQueue(name: string): WorkQueueMetrics {
    const labels = { name, controller: name };
    return {
      add: () => this.queueAdds.inc(labels),
      get: (_key, queuedSeconds) => this.queueDuration.observe(labels, queuedSeconds),
      done: (_key, workSeconds) => this.workDuration.observe(labels, workSeconds),
      retry: () => this.queueRetries.inc(labels),
      bind: (gauges) => {
        this.queues.set(name, gauges);
      },
    };
  }

  /** The rest client hook. */
  /** Informer callbacks that count stalls and relists. */
  informer(): { onStall: (kind: string) => void; onRelist: (kind: string) => void } {
    return {
      onStall: (kind) => this.watchStalls.inc({ kind }),
      onRelist: (kind) => this.relists.inc({ kind }),
    };
  }

  rest(): RestMetrics {
    return {
      observe: (method, code, host, seconds) => {
        this.restRequests.inc({ code, method, host });
        this.restLatency.observe({ verb: method, host }, seconds);
      },
    };
  }

  /** Sum of `rest_client_requests_total` for one method (tests and benchmarks). */
  async restCount(method: string): Promise<number> {
    const metric = await this.restRequests.get();
    return metric.values.filter((v) => v.labels.method === method).reduce((sum, v) => sum + v.value, 0);
  }
}

/**
 * Helpers for the control-plane fault scenarios (controlplane.test.ts): a monitor that samples the
 * operator's /healthz and leader metrics throughout a fault, the API server's own readiness, a probe
 * create that passes through the webhooks, and events read back from the operator's JSON log.
 */
import { request } from "node:https";
import type { RestClient } from "../../core/runtime.ts";
import type { ControlPlane } from "../controlplane/index.ts";
import { metricValue } from "../support/cluster.ts";
import { type Replica, WEBAPPS_PATH, webApp } from "./support.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One look at the operator: its /healthz status (0: no answer) and leader metrics (undefined: no answer). */
export interface Sample {
  /** Date.now() when the look started. */
  at: number;
  healthz: number;
  /** leader_election_master_status: 1 while leading. */
  leader: number | undefined;
  /** kubeplug_leader_election_lost_total. */
  lost: number | undefined;
  /** Counters and gauges that explain a slow recovery (summed over labels); empty without an answer. */
  counts: Partial<Record<(typeof TRACED)[number], number>>;
}

/** The metrics each {@link Sample} keeps in `counts`. */
export const TRACED = [
  "controller_runtime_reconcile_total",
  "controller_runtime_reconcile_errors_total",
  "workqueue_depth",
  "workqueue_retries_total",
  "rest_client_requests_total",
  "controller_runtime_webhook_requests_total",
  "kubeplug_leader_fenced_writes_total",
  "kubeplug_informer_relists_total",
  "rest_client_request_duration_seconds_sum",
  "rest_client_request_duration_seconds_count",
  "controller_runtime_reconcile_time_seconds_sum",
  "controller_runtime_reconcile_time_seconds_count",
  "controller_runtime_webhook_latency_seconds_sum",
  "controller_runtime_webhook_latency_seconds_count",
  "nodejs_eventloop_lag_p99_seconds",
] as const;

async function get(url: string, timeoutMs: number): Promise<{ status: number; text: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    return { status: res.status, text: await res.text() };
  } catch {
    return { status: 0, text: "" };
  }
}

/**
 * Samples a replica every `intervalMs` until stopped, and notes when its process ends. A look that
 * gets no answer within `timeoutMs` counts as no answer (a kubelet's probe would fail too).
 */
export class OperatorMonitor {
  readonly samples: Sample[] = [];
  /** Date.now() when the process ended, if it did. */
  exitedAt: number | undefined;
  private stopped = false;
  private readonly loop: Promise<void>;
  private readonly replica: Replica;

  constructor(replica: Replica, { intervalMs = 250, timeoutMs = 5_000 } = {}) {
    this.replica = replica;
    void replica.host.exited.then(() => {
      this.exitedAt ??= Date.now();
    });
    this.loop = (async () => {
      while (!this.stopped) {
        const at = Date.now();
        const [health, metrics] = await Promise.all([
          get(`${replica.healthUrl}/healthz`, timeoutMs),
          get(replica.metricsUrl, timeoutMs),
        ]);
        const ok = metrics.status === 200;
        this.samples.push({
          at,
          healthz: health.status,
          leader: ok ? metricValue(metrics.text, "leader_election_master_status") : undefined,
          lost: ok ? metricValue(metrics.text, "kubeplug_leader_election_lost_total") : undefined,
          counts: ok ? Object.fromEntries(TRACED.map((name) => [name, metricValue(metrics.text, name)])) : {},
        });
        await sleep(intervalMs);
      }
    })();
  }

  /** True while the process has neither exited nor been killed. */
  get alive(): boolean {
    const child = this.replica.host.child;
    return this.exitedAt === undefined && child.exitCode === null && child.signalCode === null;
  }

  /** Samples taken in [from, to). */
  between(from: number, to = Number.POSITIVE_INFINITY): Sample[] {
    return this.samples.filter((s) => s.at >= from && s.at < to);
  }

  /** The first sample at or after `from` for which `pred` holds. */
  first(from: number, pred: (s: Sample) => boolean): Sample | undefined {
    return this.samples.find((s) => s.at >= from && pred(s));
  }

  /** The last sample before `to` with metrics. */
  lastWithMetrics(to = Number.POSITIVE_INFINITY): Sample | undefined {
    return this.samples.filter((s) => s.at < to && s.lost !== undefined).at(-1);
  }

  async stop(): Promise<void> {
    this.stopped = true;
    await this.loop;
  }
}

/** The API server's own `/readyz?verbose` (status 0: no HTTP answer), asked with the admin token and its CA. */
export function apiserverReadyz(cp: ControlPlane, timeoutMs = 2_000): Promise<{ status: number; failing: string[] }> {
  return new Promise((resolve) => {
    const req = request(
      `${cp.server}/readyz?verbose`,
      { headers: { Authorization: `Bearer ${cp.token}` }, ca: cp.caPem, timeout: timeoutMs },
      (res) => {
        let body = "";
        res.setEncoding("utf8");
        res.on("data", (d: string) => {
          body += d;
        });
        res.on("end", () => {
          const failing = [...body.matchAll(/^\[-\](\S+)/gm)].map((m) => m[1] as string);
          resolve({ status: res.statusCode ?? 0, failing });
        });
        res.on("error", () => resolve({ status: 0, failing: [] }));
      },
    );
    req.on("error", () => resolve({ status: 0, failing: [] }));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

/** When the API server answered again and became ready, and which /readyz checks held it back until when. */
export interface ApiserverReturn {
  /** Date.now() when it first answered HTTP at all (it serves requests before /readyz passes). */
  answeredAt: number;
  /** Date.now() when /readyz passed. */
  readyAt: number;
  /** Each check that failed after it answered, with the Date.now() it was last seen failing. */
  heldBy: Map<string, number>;
}

/** Polls the API server's /readyz until it passes; see {@link ApiserverReturn}. */
export async function untilApiserverReady(cp: ControlPlane, timeoutMs = 180_000): Promise<ApiserverReturn> {
  const deadline = Date.now() + timeoutMs;
  let answeredAt: number | undefined;
  const heldBy = new Map<string, number>();
  for (;;) {
    const { status, failing } = await apiserverReadyz(cp);
    const now = Date.now();
    if (status !== 0) answeredAt ??= now;
    for (const check of failing) heldBy.set(check, now);
    if (status === 200) return { answeredAt: answeredAt ?? now, readyAt: now, heldBy };
    if (now > deadline) {
      throw new Error(
        `the API server was not ready within ${timeoutMs} ms (failing: ${failing.join(", ") || `status ${status}`})`,
      );
    }
    await sleep(50);
  }
}

/** What a probe create saw: when it was accepted, after how many refused attempts and why. */
export interface ProbeOutcome {
  /** Date.now() when the create was accepted; undefined if it never was within the time allowed. */
  acceptedAt: number | undefined;
  refused: number;
  lastRefusal: string | undefined;
  /** How long the accepted attempt itself took (ms). */
  acceptedInMs: number | undefined;
}

/**
 * Creates the WebApp `name` through the API server, retrying every `intervalMs` until accepted. With
 * the chart's webhooks (failurePolicy Fail) an accepted create has been admitted by the operator.
 */
export async function probeCreate(rest: RestClient, name: string, { timeoutMs = 120_000, intervalMs = 100 } = {}) {
  const outcome: ProbeOutcome = { acceptedAt: undefined, refused: 0, lastRefusal: undefined, acceptedInMs: undefined };
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; Date.now() < deadline; attempt++) {
    const started = Date.now();
    try {
      await rest.request("POST", WEBAPPS_PATH, { body: webApp(name) });
      outcome.acceptedAt = Date.now();
      outcome.acceptedInMs = outcome.acceptedAt - started;
      return outcome;
    } catch (err) {
      // An earlier attempt may have been stored although its answer was lost.
      if (attempt > 0 && /AlreadyExists|already exists/.test(String(err))) {
        outcome.acceptedAt = Date.now();
        outcome.acceptedInMs = outcome.acceptedAt - started;
        return outcome;
      }
      outcome.refused++;
      outcome.lastRefusal = String(err).slice(0, 300);
      await sleep(intervalMs);
    }
  }
  return outcome;
}

/** One line of the operator's pino JSON log. */
export interface LogLine {
  /** Date.parse of its ISO time. */
  at: number;
  level: number;
  msg: string;
  [field: string]: unknown;
}

/** The operator's JSON log lines (other output skipped) whose message matches `msg`, at or after `since`. */
export function logLines(output: string, msg: RegExp, since = 0): LogLine[] {
  const lines: LogLine[] = [];
  for (const text of output.split("\n")) {
    if (!text.startsWith("{")) continue;
    try {
      const line = JSON.parse(text) as Record<string, unknown>;
      const at = Date.parse(String(line.time));
      if (typeof line.msg === "string" && msg.test(line.msg) && at >= since) {
        lines.push({ ...line, at, level: Number(line.level), msg: line.msg });
      }
    } catch {
      // not a log line
    }
  }
  return lines;
}

/**
 * The fault suite's harness: a scenario records figures and checks into a {@link Report}; the test
 * fails when a check fails, and `npm run faults` (bench/faults.ts) collects every report into a
 * table. Each scenario starts its own control plane and installs kubeplug with the Helm chart, then
 * runs the chart's operator on the host (there is no kubelet) as the chart's ServiceAccount, with
 * exactly the Deployment's arguments: faults are injected into what users run, not a test build.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { it, type TestContext } from "node:test";
import { KubeConfig } from "@kubernetes/client-node";
import { pool, rssBytes } from "../../bench/lib/harness.ts";
import { isNotFound, type KubeObject, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, ensureTools, freePort, startControlPlane } from "../controlplane/index.ts";
import {
  cleanEnv,
  type DeploymentSpecLike,
  type HostOperator,
  pointWebhooksAtHost,
  runOperatorAsDeployment,
  serviceAccountKubeconfig,
  webhookCaInjected,
} from "../support/chart-operator.ts";
import { createNamespace, fetchText } from "../support/cluster.ts";
import { execOk } from "../support/exec.ts";
import { proxiedKubeConfig } from "../support/tcp-proxy.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = join(import.meta.dirname, "../..");
const CHART = join(ROOT, "charts/kubeplug");

// ---- reports ------------------------------------------------------------------------------------

/** One figure of a scenario, e.g. "converged after the restart: 2.1 s". */
export interface Figure {
  name: string;
  value: string;
}

/** One goal of a scenario and whether it held. */
export interface Check {
  goal: string;
  ok: boolean;
  /** What was measured, e.g. "0 missing, 0 duplicated, 0 orphaned". */
  measured: string;
  /**
   * A goal shown in the results table as met or missed that never fails the test: a time goal
   * ("converged within 5 s"; tests do not assert on wall time, a loaded CI machine is slower) or a
   * resource target that depends on the allocator rather than on kubeplug's code.
   */
  soft?: "time" | "target";
}

/** What a scenario leaves for the results table (bench/faults.ts reads these files). */
export interface ScenarioReport {
  id: string;
  title: string;
  figures: Figure[];
  checks: Check[];
  /** Set when the scenario itself failed (threw) before its checks. */
  error?: string;
  durationMs: number;
}

/** Collects one scenario's figures and checks; checks never throw, so every figure is kept. */
export class Report {
  readonly figures: Figure[] = [];
  readonly checks: Check[] = [];
  /** Adds a figure; numbers in milliseconds become seconds with one decimal. */
  figure(name: string, value: string | number, unit: "ms" | "" = ""): void {
    this.figures.push({ name, value: unit === "ms" && typeof value === "number" ? seconds(value) : String(value) });
  }
  /** Records whether a correctness goal held (nothing lost, duplicated...); a miss fails the test. */
  check(goal: string, ok: boolean, measured: string): void {
    this.checks.push({ goal, ok, measured });
  }
  /** Records whether a time goal held; a miss shows in the table but does not fail the test. */
  timing(goal: string, ok: boolean, measured: string): void {
    this.checks.push({ goal, ok, measured, soft: "time" });
  }
  /** Records whether a resource target held (e.g. RSS); a miss shows in the table but does not fail the test. */
  target(goal: string, ok: boolean, measured: string): void {
    this.checks.push({ goal, ok, measured, soft: "target" });
  }
}

/** Milliseconds as "1.2 s". */
export const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Where reports go: KUBEPLUG_FAULTS_RESULTS (set by `npm run faults`), else nowhere. */
const resultsDir = process.env.KUBEPLUG_FAULTS_RESULTS;

/**
 * Declares a scenario as a test. `heavy` scenarios (minutes of load) run only under `npm run faults`
 * (KUBEPLUG_FAULTS_ALL=1), so `npm test` stays within its budget.
 */
export function scenario(
  id: string,
  title: string,
  fn: (report: Report, t: TestContext) => Promise<void>,
  options: { heavy?: boolean; timeoutMs?: number } = {},
): void {
  const skip = options.heavy && !process.env.KUBEPLUG_FAULTS_ALL ? "heavy: run by `npm run faults`" : false;
  it(`${id}. ${title}`, { skip, timeout: options.timeoutMs ?? 600_000 }, async (t) => {
    const report = new Report();
    const started = performance.now();
    let error: unknown;
    try {
      await fn(report, t);
    } catch (err) {
      error = err;
    }
    const saved: ScenarioReport = {
      id,
      title,
      figures: report.figures,
      checks: report.checks,
      durationMs: performance.now() - started,
      ...(error ? { error: String(error instanceof Error ? error.message : error) } : {}),
    };
    for (const f of report.figures) t.diagnostic(`${f.name}: ${f.value}`);
    for (const c of report.checks) {
      t.diagnostic(`${c.ok ? "ok" : c.soft ? `MISSED (${c.soft} goal)` : "FAILED"}: ${c.goal} (${c.measured})`);
    }
    if (resultsDir) {
      mkdirSync(resultsDir, { recursive: true });
      writeFileSync(join(resultsDir, `${id}.json`), `${JSON.stringify(saved, null, 2)}\n`);
    }
    if (error) throw error;
    const failed = report.checks.filter((c) => !c.ok && !c.soft);
    assert.equal(failed.length, 0, failed.map((c) => `${c.goal}: measured ${c.measured}`).join("\n"));
    assert.ok(
      report.checks.some((c) => !c.soft),
      "a scenario checks at least one correctness goal (soft goals alone cannot fail)",
    );
  });
}

// ---- the installed release ----------------------------------------------------------------------

export const RELEASE_NS = "kubeplug-system";
/** Where the scenarios' WebApps live. */
export const APPS = "faults";
const RELEASE = "kp";
const FULL = "kp-kubeplug";
/** The chart's two webhook configurations. */
export const CONFIG_PATHS = [
  `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
  `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
];
export const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${RELEASE_NS}/leases/${FULL}-leader`;
export const TLS_SECRET_PATH = `/api/v1/namespaces/${RELEASE_NS}/secrets/${FULL}-webhook-tls`;

/** A replica of the chart's operator, run on the host. */
export interface Replica {
  name: string;
  host: HostOperator;
  metricsUrl: string;
  healthUrl: string;
  webhookPort: number;
}

/** Options of {@link startFaultCluster}. */
export interface FaultClusterOptions {
  /** `--set` values for `helm install`, e.g. `webhook.failurePolicy=Ignore`. */
  values?: string[];
  /** Write the API server's audit log (Metadata level) to {@link FaultCluster.auditLog}. */
  audit?: boolean;
  /** Extra kube-apiserver flags. */
  apiserverArgs?: string[];
}

/** A control plane with the chart installed and a namespace for WebApps. */
export interface FaultCluster {
  cp: ControlPlane;
  /** An admin client (not through any fault proxy). */
  rest: RestClient;
  auditLog?: string;
  /** The port the chart's webhooks call on the host; the first replica started with `admission: true` serves it. */
  webhookPort: number;
  /** A kubeconfig with the chart ServiceAccount's token (the operator's only credential). */
  operatorKubeconfig: string;
  /** Starts a replica named `name` (its POD_NAME, so its lease identity); see {@link ReplicaOptions}. */
  startReplica(name: string, options?: ReplicaOptions): Promise<Replica>;
  /** Stops every replica and the control plane. */
  close(): Promise<void>;
}

/** Options of {@link FaultCluster.startReplica}. */
export interface ReplicaOptions {
  /** Serve the webhook port the API server calls (default true); otherwise a port nobody calls. */
  admission?: boolean;
  /** Flags after the Deployment's (they win): e.g. a shorter lease. */
  extraArgs?: string[];
  /** A kubeconfig to use instead of the ServiceAccount's (e.g. one through a fault proxy). */
  kubeconfig?: string;
  /** Wait for /readyz (default true). */
  waitReady?: boolean;
}

/**
 * Starts a control plane, `helm install`s the chart with the WebApp plugin (the defaults but for
 * `values`), points the chart's webhooks at a host port and creates the {@link APPS} namespace.
 */
export async function startFaultCluster(options: FaultClusterOptions = {}): Promise<FaultCluster> {
  const work = mkdtempSync(join(tmpdir(), "kubeplug-faults-"));
  const children = new Set<ChildProcess>();
  let auditLog: string | undefined;
  const apiserverArgs = [
    "--max-requests-inflight=2000",
    "--max-mutating-requests-inflight=1000",
    ...(options.apiserverArgs ?? []),
  ];
  if (options.audit) {
    writeFileSync(
      join(work, "audit-policy.yaml"),
      'apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: ["RequestReceived"]\nrules:\n  - level: Metadata\n',
    );
    auditLog = join(work, "audit.log");
    apiserverArgs.push(
      `--audit-policy-file=${join(work, "audit-policy.yaml")}`,
      `--audit-log-path=${auditLog}`,
      "--audit-log-mode=blocking",
    );
  }
  const [cp, tools] = await Promise.all([startControlPlane({ apiserverArgs }), ensureTools()]);
  const rest = await RestClient.create(cp.kubeConfig);
  const replicas: Replica[] = [];
  const close = async () => {
    for (const r of replicas) await r.host.stop("SIGKILL");
    for (const child of children) child.kill("SIGKILL");
    await rest.close();
    await cp.stop();
    rmSync(work, { recursive: true, force: true });
  };
  try {
    const helmEnv = cleanEnv({
      HELM_CACHE_HOME: join(work, "helm/cache"),
      HELM_CONFIG_HOME: join(work, "helm/config"),
      HELM_DATA_HOME: join(work, "helm/data"),
    });
    const sets = ["plugins={webapp}", ...(options.values ?? [])].flatMap((v) => ["--set", v]);
    await execOk(
      tools.helm,
      ["install", RELEASE, CHART, "-n", RELEASE_NS, "--create-namespace", ...sets, "--kubeconfig", cp.kubeconfigPath],
      { env: helmEnv, track: children },
    );
    const sa = await serviceAccountKubeconfig(rest, cp, RELEASE_NS, FULL, work);
    await sa.rest.close();
    const webhookPort = await freePort();
    await pointWebhooksAtHost(rest, CONFIG_PATHS, webhookPort, `${FULL}-webhook`);
    await createNamespace(cp.kubeConfig, APPS);
    const deployment = await rest.request<DeploymentSpecLike>(
      "GET",
      `/apis/apps/v1/namespaces/${RELEASE_NS}/deployments/${FULL}`,
    );
    let caInjected = false;

    const startReplica = async (name: string, o: ReplicaOptions = {}): Promise<Replica> => {
      const admission = o.admission ?? true;
      const [metricsPort, healthPort] = [await freePort(), await freePort()];
      const port = admission ? webhookPort : await freePort();
      const host = runOperatorAsDeployment({
        deployment,
        namespace: RELEASE_NS,
        replace: {
          "webhook-bind-address": `127.0.0.1:${port}`,
          "metrics-bind-address": `127.0.0.1:${metricsPort}`,
          "health-probe-bind-address": `127.0.0.1:${healthPort}`,
        },
        extraArgs: ["--webhook-hosts=127.0.0.1", `--kubeconfig=${o.kubeconfig ?? sa.kubeconfigPath}`, ...(o.extraArgs ?? [])],
        command: join(ROOT, "bin/kubeplug"),
        env: cleanEnv({ POD_NAME: name }),
        children,
      });
      const replica = {
        name,
        host,
        metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
        healthUrl: `http://127.0.0.1:${healthPort}`,
        webhookPort: port,
      };
      replicas.push(replica);
      if (o.waitReady ?? true) await replicaReady(replica);
      if (!caInjected) {
        await host.running("the CA in both webhook configurations", webhookCaInjected(rest, TLS_SECRET_PATH, CONFIG_PATHS));
        caInjected = true;
      }
      return replica;
    };
    return {
      cp,
      rest,
      ...(auditLog ? { auditLog } : {}),
      webhookPort,
      operatorKubeconfig: sa.kubeconfigPath,
      startReplica,
      close,
    };
  } catch (err) {
    await close();
    throw err;
  }
}

/** Waits for a replica's /readyz, failing at once with its output if it exits. */
export function replicaReady(replica: Replica, timeoutMs = 120_000): Promise<void> {
  return replica.host.running(
    `${replica.name} to be ready`,
    async () => (await fetchText(`${replica.healthUrl}/readyz`).catch(() => ({ status: 0 }))).status === 200,
    timeoutMs,
  );
}

/** Runs `fn` with a fault cluster and closes it however `fn` ends. */
export async function withFaultCluster<T>(options: FaultClusterOptions, fn: (cluster: FaultCluster) => Promise<T>): Promise<T> {
  const cluster = await startFaultCluster(options);
  try {
    return await fn(cluster);
  } finally {
    await cluster.close();
  }
}

// ---- load and its outcome -----------------------------------------------------------------------

/** `n` names: `<prefix>-0` .. `<prefix>-<n-1>`. */
export const names = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** A kubeconfig file with the operator's credentials that reaches the API server through a proxy on `port`. */
export function proxiedOperatorKubeconfig(cluster: FaultCluster, port: number): string {
  const kc = new KubeConfig();
  kc.loadFromFile(cluster.operatorKubeconfig);
  const path = join(cluster.cp.dir, `operator-via-${port}.kubeconfig`);
  writeFileSync(path, proxiedKubeConfig(kc, port).exportConfig(), { mode: 0o600 });
  return path;
}

/** A WebApp named `name` in {@link APPS}. */
export const webApp = (name: string, replicas = 1) => ({
  apiVersion: "webapp.example.com/v1",
  kind: "WebApp",
  metadata: { name, namespace: APPS },
  spec: { image: "nginx:1.27", replicas },
});
export const WEBAPPS_PATH = `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`;

/** What a client saw while creating: refusals it retried, by message. */
export interface BurstOutcome {
  created: number;
  /** Attempts refused (API server down, webhook down...), retried until accepted. */
  retried: number;
  /** A sample of the refusal messages. */
  refusals: string[];
}

/**
 * Creates `names.length` WebApps, `concurrency` in flight, as a client that retries until each is
 * accepted (a refused create is retried; an AlreadyExists after a retry counts as accepted), so a
 * fault never loses an object on the client's side. Stops retrying after `giveUpMs`.
 */
export async function createBurst(
  rest: RestClient,
  names: readonly string[],
  { concurrency = 16, giveUpMs = 180_000 }: { concurrency?: number; giveUpMs?: number } = {},
): Promise<BurstOutcome> {
  const outcome: BurstOutcome = { created: 0, retried: 0, refusals: [] };
  const deadline = Date.now() + giveUpMs;
  await pool(names, concurrency, async (name) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await rest.request("POST", WEBAPPS_PATH, { body: webApp(name) });
        outcome.created++;
        return;
      } catch (err) {
        if (attempt > 0 && /AlreadyExists|already exists/.test(String(err))) {
          outcome.created++;
          return;
        }
        outcome.retried++;
        if (outcome.refusals.length < 5) outcome.refusals.push(String(err).slice(0, 300));
        if (Date.now() > deadline) throw new Error(`${name} was still refused after ${giveUpMs} ms: ${String(err)}`);
        await new Promise((r) => setTimeout(r, Math.min(1_000, 100 * 2 ** attempt)));
      }
    }
  });
  return outcome;
}

interface Owned extends KubeObject {
  metadata: KubeObject["metadata"] & {
    uid?: string;
    ownerReferences?: { uid: string; kind: string; controller?: boolean }[];
    finalizers?: string[];
  };
}
interface WebAppLike extends Owned {
  status?: { observedGeneration?: number };
}

/** The state of {@link APPS}: every WebApp with its children, and what is wrong. */
export interface Census {
  webApps: number;
  /** WebApps whose status reports the current generation and that have one Deployment and one Service. */
  converged: number;
  /** WebApps lacking a Deployment or a Service. */
  missing: number;
  /** WebApps with more than one Deployment or Service. */
  duplicated: number;
  /** Deployments and Services labelled managed-by kubeplug whose controller is no live WebApp. */
  orphaned: number;
}

/** Lists WebApps, Deployments and Services in {@link APPS} (from the API server) and counts. */
export async function census(rest: RestClient): Promise<Census> {
  const [apps, deployments, services] = await Promise.all([
    rest.request<{ items: WebAppLike[] }>("GET", WEBAPPS_PATH),
    rest.request<{ items: Owned[] }>("GET", `/apis/apps/v1/namespaces/${APPS}/deployments`),
    rest.request<{ items: Owned[] }>("GET", `/api/v1/namespaces/${APPS}/services`),
  ]);
  const uids = new Set(apps.items.map((a) => a.metadata.uid));
  const children = (items: Owned[]) => {
    const byOwner = new Map<string, number>();
    let orphaned = 0;
    for (const child of items) {
      if (child.metadata.labels?.["app.kubernetes.io/managed-by"] !== "kubeplug") continue;
      const owner = child.metadata.ownerReferences?.find((o) => o.controller && o.kind === "WebApp");
      if (!owner || !uids.has(owner.uid)) orphaned++;
      else byOwner.set(owner.uid, (byOwner.get(owner.uid) ?? 0) + 1);
    }
    return { byOwner, orphaned };
  };
  const d = children(deployments.items);
  const s = children(services.items);
  let converged = 0;
  let missing = 0;
  let duplicated = 0;
  for (const app of apps.items) {
    const uid = app.metadata.uid as string;
    const [nd, ns] = [d.byOwner.get(uid) ?? 0, s.byOwner.get(uid) ?? 0];
    if (nd === 0 || ns === 0) missing++;
    if (nd > 1 || ns > 1) duplicated++;
    if (nd === 1 && ns === 1 && app.status?.observedGeneration === app.metadata.generation) converged++;
  }
  return { webApps: apps.items.length, converged, missing, duplicated, orphaned: d.orphaned + s.orphaned };
}

/** "0 missing, 0 duplicated, 0 orphaned (200 of 200 converged)" */
export const describeCensus = (c: Census) =>
  `${c.missing} missing, ${c.duplicated} duplicated, ${c.orphaned} orphaned (${c.converged} of ${c.webApps} converged)`;

/** True when nothing is missing, duplicated or orphaned. */
export const intact = (c: Census) => c.missing === 0 && c.duplicated === 0 && c.orphaned === 0;

/**
 * Polls until `expected` WebApps are all converged; resolves with the census and the time it was
 * first seen, or (past `timeoutMs`) with the last census and `undefined`.
 */
export async function waitConverged(
  rest: RestClient,
  expected: number,
  timeoutMs = 120_000,
): Promise<{ census: Census; at: number | undefined }> {
  const deadline = performance.now() + timeoutMs;
  let last: Census = { webApps: 0, converged: 0, missing: 0, duplicated: 0, orphaned: 0 };
  for (;;) {
    try {
      last = await census(rest);
      if (last.webApps === expected && last.converged === expected) return { census: last, at: performance.now() };
    } catch {
      // the API server may still be coming back
    }
    if (performance.now() > deadline) return { census: last, at: undefined };
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** The lease's holder, or undefined. */
export async function leaseHolder(rest: RestClient): Promise<string | undefined> {
  try {
    const lease = await rest.request<{ spec?: { holderIdentity?: string } }>("GET", LEASE_PATH);
    return lease.spec?.holderIdentity || undefined;
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** Resident set size (bytes) and open file descriptors of a process. */
export function processFootprint(pid: number): { rssBytes: number; fds: number } {
  let fds = 0;
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    try {
      readlinkSync(`/proc/${pid}/fd/${fd}`);
      fds++;
    } catch {
      // closed meanwhile
    }
  }
  return { rssBytes: rssBytes(pid), fds };
}

/** The node pid behind `bin/kubeplug` (it may exec or spawn node). */
export function operatorPid(replica: Replica): number {
  return replica.host.child.pid as number;
}

/** Waits for `what`; rejects after `timeoutMs` (see support/wait.ts). */
export { waitFor };

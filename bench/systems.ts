/** Starting the systems under test: kubeplug, the raw floor, sample-controller. */
import { execFileSync } from "node:child_process";
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { RestClient } from "../core/runtime.ts";
import type { ControlPlane } from "../test/controlplane/index.ts";
import { freePort, startControlPlane } from "../test/controlplane/index.ts";
import { Managed, waitHttpOk } from "./lib/harness.ts";

const root = join(import.meta.dirname, "..");
export const AUDIT_POLICY = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: Metadata
`;

/** A fresh control plane tuned for load: wide service range, higher in-flight limits, optional audit log. */
export async function benchControlPlane(
  options: { audit?: boolean; controllerManager?: boolean } = {},
): Promise<ControlPlane & { auditLog?: string }> {
  const { mkdtempSync, rmSync, writeFileSync } = await import("node:fs");
  const { tmpdir } = await import("node:os");
  const args = ["--max-requests-inflight=2000", "--max-mutating-requests-inflight=1000"];
  let auditLog: string | undefined;
  if (options.audit) {
    const dir = mkdtempSync(join(tmpdir(), "kubeplug-audit-"));
    writeFileSync(join(dir, "policy.yaml"), AUDIT_POLICY);
    auditLog = join(dir, "audit.log");
    args.push(
      `--audit-policy-file=${join(dir, "policy.yaml")}`,
      `--audit-log-path=${auditLog}`,
      "--audit-log-mode=batch",
      // Batches are written at least every second (the default waits up to 30 s), so the idle
      // window's last events are in the file when it is read.
      "--audit-log-batch-max-wait=1s",
    );
  }
  const cp = await startControlPlane({
    apiserverArgs: args,
    serviceClusterIpRange: "10.0.0.0/12",
    controllerManager: options.controllerManager ?? true,
  });
  if (!auditLog) return cp;
  // The audit log lives outside the control plane's directory: remove it with the control plane.
  const auditDir = join(auditLog, "..");
  const stop = cp.stop.bind(cp);
  return Object.assign(cp, {
    auditLog,
    stop: async () => {
      await stop();
      rmSync(auditDir, { recursive: true, force: true });
    },
  });
}

/** Runs `fn` with a fresh bench control plane and a REST client to it; stops both however `fn` ends. */
export async function withControlPlane<T>(
  options: { audit?: boolean; controllerManager?: boolean },
  fn: (cp: ControlPlane & { auditLog?: string }, rest: RestClient) => Promise<T>,
): Promise<T> {
  const cp = await benchControlPlane(options);
  try {
    const rest = await RestClient.create(cp.kubeConfig);
    try {
      return await fn(cp, rest);
    } finally {
      await rest.close();
    }
  } finally {
    await cp.stop();
  }
}

/** A running kubeplug manager process. */
export interface KubeplugProcess {
  proc: Managed;
  metricsUrl: string;
  healthUrl: string;
  webhookPort?: number;
}

let deployed: string | undefined;

/**
 * kubeplug as the image runs it: compiled JavaScript (the package's dist/), not the sources through
 * Node's type stripping, which compiles a WebAssembly module at start and kept ~28 MiB more RSS in
 * an idle manager (149 against 121 MiB). Built once per benchmark process (tsc, ~4 s) into a
 * temporary directory beside the checkout's node_modules, removed at exit; started through its
 * bin/kubeplug, so with the same Node flags as the image.
 */
export function deployedKubeplug(): string {
  if (deployed) return deployed;
  const dir = mkdtempSync(join(tmpdir(), "kubeplug-deployed-"));
  process.on("exit", () => rmSync(dir, { recursive: true, force: true }));
  const tsc = join(root, "node_modules/typescript/bin/tsc");
  execFileSync(process.execPath, [tsc, "-p", join(root, "tsconfig.build.json"), "--outDir", join(dir, "dist")], {
    stdio: "inherit",
  });
  mkdirSync(join(dir, "bin"));
  copyFileSync(join(root, "bin/kubeplug"), join(dir, "bin/kubeplug"));
  chmodSync(join(dir, "bin/kubeplug"), 0o755);
  copyFileSync(join(root, "package.json"), join(dir, "package.json"));
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  deployed = join(dir, "bin/kubeplug");
  return deployed;
}

/** Starts `kubeplug run --install` with the webapp plugin, as deployed; resolves when /readyz passes. */
export async function startKubeplug(
  kubeconfigPath: string,
  options: { workers: number; webhooks?: boolean; readyTimeoutMs?: number },
): Promise<KubeplugProcess & { readyMs: number }> {
  const [metrics, health, webhook] = [await freePort(), await freePort(), await freePort()];
  const args = [
    "run",
    "--install",
    "--kubeconfig",
    kubeconfigPath,
    "--plugins",
    "webapp",
    "--max-concurrent-reconciles",
    String(options.workers),
    "--metrics-bind-address",
    `127.0.0.1:${metrics}`,
    "--health-probe-bind-address",
    `127.0.0.1:${health}`,
    "--webhook-bind-address",
    options.webhooks ? `127.0.0.1:${webhook}` : "0",
    "--log-level",
    "warn",
  ];
  const started = performance.now();
  // Through bin/kubeplug, the command the image and the chart run, with its Node flags.
  const proc = new Managed("kubeplug", deployedKubeplug(), args);
  const healthUrl = `http://127.0.0.1:${health}`;
  await waitHttpOk(`${healthUrl}/readyz`, options.readyTimeoutMs ?? 120_000).catch(async (err: unknown) => {
    await proc.stop();
    throw new Error(`${String(err)}\n${proc.output}`);
  });
  return {
    proc,
    metricsUrl: `http://127.0.0.1:${metrics}/metrics`,
    healthUrl,
    readyMs: performance.now() - started,
    ...(options.webhooks ? { webhookPort: webhook } : {}),
  };
}

/** Starts the raw floor script (see its modes); resolves when it has listed and watches. */
export async function startRawFloor(
  kubeconfigPath: string,
  namespace: string,
  workers: number,
  mode: "same" | "minimal" = "same",
): Promise<Managed> {
  const proc = new Managed("raw-floor", process.execPath, [
    join(root, "bench/baselines/raw-floor.ts"),
    kubeconfigPath,
    namespace,
    String(workers),
    mode,
  ]);
  const deadline = Date.now() + 30_000;
  while (!proc.output.includes("ready")) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`raw floor did not start:\n${proc.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return proc;
}

/**
 * Starts the echo webhook (bench/baselines/echo-webhook.ts) and registers it as a mutating and a
 * validating webhook for WebApp creates, failurePolicy Fail; resolves once the API server calls it.
 */
export async function startEchoWebhooks(rest: RestClient): Promise<Managed> {
  const proc = new Managed("echo-webhook", process.execPath, [join(root, "bench/baselines/echo-webhook.ts")]);
  const deadline = Date.now() + 30_000;
  const started = () => /port (\d+) ca (\S+)\n/.exec(proc.output);
  while (!started()) {
    if (Date.now() > deadline || proc.child.exitCode !== null) throw new Error(`echo webhook did not start:\n${proc.output}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const [, port, caBundle] = started() as RegExpExecArray;
  const url = `https://127.0.0.1:${port}`;
  const webhook = (name: string, path: string) => ({
    name,
    clientConfig: { url: `${url}${path}`, caBundle },
    rules: [{ apiGroups: ["webapp.example.com"], apiVersions: ["v1"], operations: ["CREATE"], resources: ["webapps"] }],
    sideEffects: "None",
    admissionReviewVersions: ["v1"],
    failurePolicy: "Fail",
  });
  const api = "/apis/admissionregistration.k8s.io/v1";
  await rest.request("POST", `${api}/mutatingwebhookconfigurations`, {
    body: { metadata: { name: "echo-mutating" }, webhooks: [webhook("mecho.bench.example.com", "/mutate")] },
  });
  await rest.request("POST", `${api}/validatingwebhookconfigurations`, {
    body: { metadata: { name: "echo-validating" }, webhooks: [webhook("vecho.bench.example.com", "/validate")] },
  });
  // The API server picks up new configurations from its informer: wait until a create is admitted
  // through them (the echo server counts nothing, so watch the API server's own histogram).
  const called = async () => {
    const text = await rest.requestText("GET", "/metrics");
    return /apiserver_admission_webhook_admission_duration_seconds_count\{name="vecho/.test(text);
  };
  while (!(await called())) {
    if (Date.now() > deadline + 30_000) throw new Error("the API server never called the echo webhook");
    await rest
      .request("POST", "/apis/webapp.example.com/v1/namespaces/default/webapps", {
        body: { apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name: "echo-probe" }, spec: { image: "x:1" } },
        query: { dryRun: "All" },
      })
      .catch(() => undefined);
    await new Promise((r) => setTimeout(r, 200));
  }
  return proc;
}

/** Starts sample-controller; `tuned` lifts the client rate limit and sets the workers (documented patch). */
export function startSampleController(binary: string, kubeconfigPath: string, tuned?: { qps: number; workers: number }): Managed {
  return new Managed(
    "sample-controller",
    binary,
    [`-kubeconfig=${kubeconfigPath}`, "-v=0"],
    tuned ? { SAMPLE_CONTROLLER_QPS: String(tuned.qps), SAMPLE_CONTROLLER_WORKERS: String(tuned.workers) } : {},
  );
}

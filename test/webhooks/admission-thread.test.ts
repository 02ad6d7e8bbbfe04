/**
 * Admission on its own thread (webhooks/thread.ts): `kubeplug run` with the built-in WebApp plugin
 * and a test plugin loaded by `--plugin` whose reconciler blocks the main event loop for 12 s. While
 * it is blocked, a create through the API server is admitted by the WebApp webhooks (defaulted, its
 * finalizer added at admission): answered before the block ends. With `--webhook-thread=false` the
 * same create is not answered until the block has ended (or the API server gives up on the webhook),
 * which shows the test can tell the two apart. The thread's metrics appear on the manager's /metrics,
 * and the Tenant validator, which reads the cache through an index, reads the thread's own cache.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiError, ConfigMapKind, collectionPath, RestClient } from "../../core/runtime.ts";
import { TenantKind } from "../../plugins/tenant/api.ts";
import { WebAppKind } from "../../plugins/webapp/api.ts";
import { FINALIZER } from "../../plugins/webapp/reconciler.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { type HostOperator, startOperator } from "../support/chart-operator.ts";
import { createNamespace, fetchText, localListeners, metricValue } from "../support/cluster.ts";

const root = join(import.meta.dirname, "..", "..");
const NS = "thread";
/** How long the test plugin blocks the main thread: longer than the webhooks' 10 s timeout. */
const BLOCK_MS = 12_000;

let cp: ControlPlane;
let rest: RestClient;
let work: string;
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) child.kill("SIGKILL");
});

before(async () => {
  cp = await startControlPlane();
  rest = await RestClient.create(cp.kubeConfig);
  await createNamespace(cp.kubeConfig, NS);
  work = mkdtempSync(join(tmpdir(), "kubeplug-thread-"));
});
after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await rest?.close();
  await cp?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

/** `kubeplug run --install` with the WebApp plugin and the blocking test plugin; resolves once it admits. */
async function runOperator(extra: string[]): Promise<{ op: HostOperator; metricsPort: number }> {
  const { metricsPort, flags } = await localListeners();
  const op = startOperator({
    command: process.execPath,
    args: [
      join(root, "cli/main.ts"),
      "run",
      "--install",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--plugins",
      "webapp,tenant",
      "--plugin",
      join(root, "test/fixtures/blocker-plugin.ts"),
      // Watching one namespace: on this 1.20 API server, --install labels it so the webhooks select it.
      "--namespace",
      NS,
      ...flags,
      ...extra,
    ],
    env: process.env,
    cwd: root,
    children,
  });
  await op.running(
    "the WebApp webhooks to admit a dry-run create",
    async () => {
      const app = await dryRunCreate("probe");
      if (!app.metadata.finalizers?.includes(FINALIZER))
        throw new Error(`admitted without the finalizer: ${JSON.stringify(app)}`);
      return true;
    },
    120_000,
  );
  return { op, metricsPort };
}

function dryRunCreate(name: string): Promise<{ metadata: { finalizers?: string[] }; spec: { replicas?: number } }> {
  return rest.request("POST", collectionPath(WebAppKind, NS), {
    query: { dryRun: "All" },
    body: { apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name }, spec: { image: "nginx:1.27" } },
  });
}

/** Makes the test plugin block the operator's main thread; resolves once the block has begun. */
async function blockMainThread(op: HostOperator, marker: string): Promise<void> {
  await rest.request("POST", collectionPath(ConfigMapKind, NS), {
    body: {
      apiVersion: "v1",
      kind: "ConfigMap",
      metadata: { name: marker, labels: { "test.kubeplug.dev/block": "true" } },
      data: { marker: join(work, marker), blockMs: String(BLOCK_MS) },
    },
  });
  await op.running("the main thread to be blocked", async () => existsSync(join(work, `${marker}.start`)), 60_000);
}

describe("admission on its own thread", () => {
  it("admits while reconciles block the main event loop; reports its metrics on /metrics", async () => {
    const { op, metricsPort } = await runOperator([]);
    try {
      assert.match(op.output(), /serving admission on its own thread/);
      await blockMainThread(op, "block-thread");
      const app = await dryRunCreate("during-block");
      const blockEnded = existsSync(join(work, "block-thread.end"));
      assert.equal(blockEnded, false, "admitted before the main thread's block ended");
      assert.ok(app.metadata.finalizers?.includes(FINALIZER), "the defaulting webhook added the finalizer");
      assert.equal(app.spec.replicas, 1);
      await op.running("the block to end", async () => existsSync(join(work, "block-thread.end")), 60_000);
      const { status, text } = await fetchText(`http://127.0.0.1:${metricsPort}/metrics`);
      assert.equal(status, 200);
      const mutate = { webhook: "/mutate-webapp-example-com-v1-webapp", code: "200" };
      assert.ok(metricValue(text, "controller_runtime_webhook_requests_total", mutate) >= 2, text);
      assert.match(text, /^kubeplug_admission_eventloop_lag_p99_seconds /m);
      assert.match(text, /^kubeplug_admission_heap_size_total_bytes [1-9]/m);
      assert.match(text, /^controller_runtime_reconcile_total\{/m, "the main thread's own metrics are there too");
      assert.equal(
        (text.match(/^# TYPE controller_runtime_webhook_requests_total /gm) ?? []).length,
        1,
        "each metric appears once",
      );
      // A validator that reads the cache through an index (one Tenant per namespace) reads the
      // thread's own cache: the first Tenant is in it, so the second is denied.
      const tenant = (name: string) => ({
        apiVersion: "platform.example.com/v1",
        kind: "Tenant",
        metadata: { name },
        spec: { namespace: "team-thread", owners: [{ name: "alice" }] },
      });
      await rest.request("POST", collectionPath(TenantKind), { body: tenant("first") });
      await op.running(
        "the second Tenant claiming the same namespace to be denied",
        async () => {
          const denied = await rest
            .request("POST", collectionPath(TenantKind), { query: { dryRun: "All" }, body: tenant("second") })
            .then(
              () => undefined,
              (err: unknown) => (err instanceof ApiError ? err.message : undefined),
            );
          return denied?.includes('already claimed by Tenant "first"') ?? false;
        },
        60_000,
      );
      const exit = await op.stop("SIGTERM");
      assert.deepEqual(exit, { code: 0, signal: null }, op.tail());
    } finally {
      await op.stop();
    }
  });

  it("with --webhook-thread=false, the same create waits for the main thread (the test can tell)", async () => {
    const { op } = await runOperator(["--webhook-thread=false"]);
    try {
      assert.doesNotMatch(op.output(), /serving admission on its own thread/);
      await blockMainThread(op, "block-main");
      const answered = await dryRunCreate("during-block").then(
        () => "admitted",
        (err: unknown) => (err instanceof ApiError ? `refused: ${err.message}` : `failed: ${String(err)}`),
      );
      const blockEnded = existsSync(join(work, "block-main.end"));
      assert.ok(
        blockEnded || answered.startsWith("refused"),
        `answered (${answered}) only once the block ended, or refused when the API server gave up on the webhook`,
      );
    } finally {
      await op.stop();
    }
  });
});

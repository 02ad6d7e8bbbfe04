/**
 * The raw API floor, made directly at the operator's concurrency, reacting to the same watch. Modes:
 * - `same` (default): exactly the writes the WebApp operator makes for each WebApp without webhooks
 *   (finalizer patch, Deployment create, Service create, status write, and the one Event naming the
 *   children, sent without waiting, once the work is quiet, as its event recorder does). The ratio
 *   to it is the framework's overhead for the same work.
 * - `minimal`: only the job's own writes (Deployment, Service, status), the least any operator must
 *   do. The ratio to it also counts the cost of kubeplug's design choices (finalizer, Events).
 * Usage: node raw-floor.ts KUBECONFIG NAMESPACE WORKERS [same|minimal]
 */
import { KubeConfig } from "@kubernetes/client-node";
import { EventQueue } from "../../core/events/recorder.ts";
import { createLogger } from "../../core/logger.ts";
import { PatchType, RestClient } from "../../core/runtime.ts";
import { untilAborted } from "../../core/sleep.ts";
import { pool } from "../lib/harness.ts";

const [kubeconfig, namespace, workersArg, modeArg = "same"] = process.argv.slice(2);
if (modeArg !== "same" && modeArg !== "minimal") {
  process.stderr.write(`raw-floor: unknown mode "${modeArg}"; choose same or minimal\n`);
  process.exit(2);
}
const minimal = modeArg === "minimal";
const kc = new KubeConfig();
kc.loadFromFile(kubeconfig as string);
const rest = await RestClient.create(kc);
const workers = Number(workersArg ?? 4);
const base = `/apis/webapp.example.com/v1/namespaces/${namespace}/webapps`;

interface App {
  metadata: { name: string; uid: string; generation: number; resourceVersion: string };
  spec: { image: string; replicas?: number; port?: number };
}

const queue: App[] = [];
// Every idle worker waits on its own wake-up; one shared variable left all but the last one asleep.
const idle: (() => void)[] = [];
const seen = new Set<string>();

/** WebApps being handled now. */
let handling = 0;
/**
 * Event writes through the operator's own queue (core/events/recorder.ts), held the same way: one at
 * a time, in order, once no WebApp has been queued or handled for 100 ms (or after 10 s).
 */
const events = new EventQueue(createLogger("warn"), { holdWhile: () => queue.length > 0 || handling > 0 });

/** An Event about the WebApp, queued without waiting for it, as the operator's event recorder does. */
function event(app: App, reason: string, message: string): void {
  const now = new Date().toISOString();
  const name = app.metadata.name;
  events.push(async () => {
    await rest
      .request("POST", `/api/v1/namespaces/${namespace}/events`, {
        body: {
          apiVersion: "v1",
          kind: "Event",
          metadata: { name: `${name}.${Date.now().toString(16)}${Math.random().toString(16).slice(2, 6)}`, namespace },
          involvedObject: { apiVersion: "webapp.example.com/v1", kind: "WebApp", name, namespace, uid: app.metadata.uid },
          type: "Normal",
          reason,
          message,
          count: 1,
          firstTimestamp: now,
          lastTimestamp: now,
          source: { component: "raw-floor" },
        },
      })
      .catch((err: unknown) => process.stderr.write(`event: ${String(err)}\n`));
  });
}

async function handle(app: App): Promise<void> {
  const name = app.metadata.name;
  const owner = [
    {
      apiVersion: "webapp.example.com/v1",
      kind: "WebApp",
      name,
      uid: app.metadata.uid,
      controller: true,
      blockOwnerDeletion: true,
    },
  ];
  const labels = { app: name, "app.kubernetes.io/managed-by": "kubeplug" };
  const port = app.spec.port ?? 8080;
  if (!minimal) {
    await rest.request("PATCH", `${base}/${name}`, {
      body: [
        { op: "test", path: "/metadata/finalizers", value: null },
        { op: "add", path: "/metadata/finalizers", value: ["webapp.example.com/finalizer"] },
      ],
      contentType: PatchType.json,
    });
  }
  await rest.request("POST", `/apis/apps/v1/namespaces/${namespace}/deployments`, {
    body: {
      apiVersion: "apps/v1",
      kind: "Deployment",
      metadata: { name, namespace, labels, ownerReferences: owner },
      spec: {
        replicas: app.spec.replicas ?? 1,
        selector: { matchLabels: { app: name } },
        template: {
          metadata: { labels },
          spec: {
            containers: [
              { name: "webapp", image: app.spec.image, ports: [{ name: "http", containerPort: port, protocol: "TCP" }] },
            ],
          },
        },
      },
    },
  });
  await rest.request("POST", `/api/v1/namespaces/${namespace}/services`, {
    body: {
      apiVersion: "v1",
      kind: "Service",
      metadata: { name, namespace, labels, ownerReferences: owner },
      spec: {
        type: "ClusterIP",
        selector: { app: name },
        ports: [{ name: "http", port: 80, targetPort: port, protocol: "TCP" }],
      },
    },
  });
  if (!minimal) event(app, "Created", `Created Deployment ${name}, Service ${name}`);
  await rest.request("PATCH", `${base}/${name}/status`, {
    body: { status: { availableReplicas: 0, observedGeneration: app.metadata.generation } },
    contentType: PatchType.merge,
  });
}

const enqueue = (app: App) => {
  if (seen.has(app.metadata.name)) return;
  seen.add(app.metadata.name);
  queue.push(app);
  idle.shift()?.();
};
const abort = new AbortController();
process.on("SIGTERM", () => abort.abort());
// List, then watch from the list's version; when a watch ends or breaks, list and watch again (as an
// informer would): a raw floor that silently stopped hearing events would never converge.
const listAndWatch = async (): Promise<void> => {
  while (!abort.signal.aborted) {
    try {
      const list = await rest.request<{ metadata: { resourceVersion: string }; items: App[] }>("GET", base);
      for (const app of list.items) enqueue(app);
      if (!ready) {
        ready = true;
        process.stdout.write("ready\n");
      }
      for await (const event of rest.watch(base, { resourceVersion: list.metadata.resourceVersion }, abort.signal)) {
        if (event.type === "ADDED") enqueue(event.object as unknown as App);
      }
    } catch (err) {
      if (!abort.signal.aborted) process.stderr.write(`watch: ${String(err)}; listing again\n`);
    }
  }
};
let ready = false;
void listAndWatch();
const loop = async () => {
  while (!abort.signal.aborted) {
    const app = queue.shift();
    if (!app) {
      await Promise.race([new Promise<void>((r) => idle.push(r)), untilAborted(abort.signal)]);
      continue;
    }
    handling++;
    await handle(app).catch((err: unknown) => process.stderr.write(`${app.metadata.name}: ${String(err)}\n`));
    handling--;
  }
};
await pool(
  Array.from({ length: workers }, (_, i) => i),
  workers,
  loop,
);
await rest.close();

/**
 * Manual end-to-end check of the Pepr benchmark peer (bench/pepr.ts); not part of `npm test`
 * (the name does not match *.test.ts: it installs Pepr, ~210 MB).
 *
 *   export PATH=$PWD/node_modules/.bin:$PATH && node test/pepr-peer.manual.ts
 *
 * Fresh control plane with a controller manager, WebApp CRD, `pepr dev`; then 20 WebApps converge,
 * an invalid one is denied, a defaulted one is shown, a deleted Deployment comes back; everything
 * is stopped and no Pepr process may be left.
 */
import { execFileSync } from "node:child_process";
import { request } from "node:https";
import { createAll, percentile, rssBytes, Tracker } from "../bench/lib/harness.ts";
import { ensurePepr, PEPR_UUID, processTree, startPepr } from "../bench/pepr.ts";
import {
  type Deployment,
  DeploymentKind,
  type KubeObject,
  kindOf,
  RestClient,
  type Service,
  ServiceKind,
} from "../core/runtime.ts";
import { startControlPlane } from "./controlplane/index.ts";

interface WebApp extends KubeObject {
  spec: { image: string; replicas?: number; port?: number; serviceType?: string };
  status?: { observedGeneration?: number; availableReplicas?: number; conditions?: { type: string; status: string }[] };
}
const WebAppKind = kindOf<WebApp>({
  group: "webapp.example.com",
  version: "v1",
  kind: "WebApp",
  plural: "webapps",
  namespaced: true,
});
const NS = "default";
const N = 20;
const path = `/apis/webapp.example.com/v1/namespaces/${NS}/webapps`;
const t = () => new Date().toISOString().slice(11, 23);
const log = (m: string) => console.log(`${t()} ${m}`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const mib = (b: number) => `${(b / 2 ** 20).toFixed(1)} MiB`;

function peprProcesses(): string {
  try {
    return execFileSync("sh", ["-c", "ps aux | grep -e peers/pepr -e pepr-kubeplug | grep -v grep || true"]).toString().trim();
  } catch {
    return "";
  }
}

/** POSTs an AdmissionReview straight to Pepr's validating endpoint (what the API server would send). */
function review(url: string, object: unknown): Promise<unknown> {
  const body = JSON.stringify({
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: "00000000-0000-0000-0000-000000000001",
      kind: { group: "webapp.example.com", version: "v1", kind: "WebApp" },
      resource: { group: "webapp.example.com", version: "v1", resource: "webapps" },
      name: "direct",
      namespace: NS,
      operation: "CREATE",
      userInfo: { username: "admin" },
      object,
      dryRun: true,
    },
  });
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      // Pepr's dev certificate does not verify with Node's checks (DEPTH_ZERO_SELF_SIGNED_CERT); the
      // API server (Go) accepts it with the caBundle. This is a local demo call, so skip the check.
      { method: "POST", rejectUnauthorized: false, headers: { "Content-Type": "application/json" } },
      (res) => {
        let text = "";
        res.on("data", (d) => {
          text += d;
        });
        res.on("end", () => resolve(JSON.parse(text)));
      },
    );
    req.on("error", reject);
    req.end(body);
  });
}

async function main() {
  const before = peprProcesses();
  if (before) throw new Error(`Pepr processes are running already:\n${before}`);
  let t0 = performance.now();
  await ensurePepr(log);
  log(`ensurePepr: ${((performance.now() - t0) / 1000).toFixed(1)} s`);

  const cp = await startControlPlane({ controllerManager: true });
  const rest = await RestClient.create(cp.kubeConfig);
  let pepr: Awaited<ReturnType<typeof startPepr>> | undefined;
  try {
    const { installCrds } = await import("../cli/install.ts");
    const { webAppPlugin } = await import("../plugins/webapp/index.ts");
    await installCrds(rest, [webAppPlugin]);
    log("WebApp CRD installed");

    pepr = await startPepr(cp, log);
    log(`startPepr: ready in ${(pepr.readyMs / 1000).toFixed(1)} s, webhook port ${pepr.webhookPort}`);
    for (const p of processTree(pepr.proc.pid)) {
      const work = pepr.pids().includes(p.pid) ? " <- pids()" : "";
      log(`  pid ${p.pid} rss ${mib(rssBytes(p.pid))}${work}: ${p.cmdline.slice(0, 140)}`);
    }

    // 20 WebApps: Deployment, Service and status for their generation.
    const trackers = [
      new Tracker(rest, WebAppKind, (a) => a.status?.observedGeneration === a.metadata.generation, { namespace: NS }),
      new Tracker<Deployment>(rest, DeploymentKind, () => true, { namespace: NS }),
      new Tracker<Service>(rest, ServiceKind, (s) => s.metadata.name !== "kubernetes", { namespace: NS }),
    ] as unknown as Tracker<KubeObject>[];
    await Promise.all(trackers.map((tr) => tr.informer.waitForSync()));
    for (const tr of trackers) tr.reset();
    const apps = Array.from({ length: N }, (_, i) => ({
      apiVersion: "webapp.example.com/v1",
      kind: "WebApp",
      metadata: { name: `app-${i}`, namespace: NS },
      spec: { image: "nginx:1.27", replicas: 1, port: 8080 },
    }));
    t0 = performance.now();
    await createAll(rest, () => path, apps);
    const created = performance.now() - t0;
    await Promise.all(trackers.map((tr) => tr.waitFor(N, 60_000)));
    const converged = Math.max(...trackers.flatMap((tr) => [...tr.reached.values()])) - t0;
    log(
      `${N} WebApps: created in ${created.toFixed(0)} ms, converged (Deployment + Service + status) in ${converged.toFixed(0)} ms`,
    );
    const sample = await rest.request<WebApp>("GET", `${path}/app-0`);
    log(`app-0 status: ${JSON.stringify(sample.status)}`);
    log(`app-0 annotations: ${JSON.stringify(sample.metadata.annotations)}`);
    const dep = await rest.request<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/app-0`);
    log(
      `app-0 Deployment: labels ${JSON.stringify(dep.metadata.labels)} owner ${JSON.stringify(dep.metadata.ownerReferences)} managers ${JSON.stringify(
        dep.metadata.managedFields?.map((f) => `${f.manager}/${f.operation}`),
      )}`,
    );
    const svc = await rest.request<Service>("GET", `/api/v1/namespaces/${NS}/services/app-0`);
    log(`app-0 Service spec: ${JSON.stringify({ type: svc.spec?.type, selector: svc.spec?.selector, ports: svc.spec?.ports })}`);

    // Invalid: replicas 11.
    try {
      await rest.request("POST", path, {
        body: { ...apps[0], metadata: { name: "bad", namespace: NS }, spec: { image: "nginx:1.27", replicas: 11 } },
      });
      log("INVALID WebApp (replicas 11) was ACCEPTED");
    } catch (err) {
      log(`invalid WebApp (replicas 11) denied: ${String(err)}`);
    }
    try {
      await rest.request("POST", path, { body: { ...apps[0], metadata: { name: "bad2", namespace: NS }, spec: { image: "" } } });
      log("INVALID WebApp (empty image) was ACCEPTED");
    } catch (err) {
      log(`invalid WebApp (empty image) denied: ${String(err)}`);
    }
    // What Pepr's own validator says about it, sent straight to its endpoint.
    const vwc = await rest.request<{ webhooks: { clientConfig: { url: string; caBundle: string } }[] }>(
      "GET",
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/pepr-${PEPR_UUID}`,
    );
    const hook = vwc.webhooks[0]?.clientConfig;
    if (hook) {
      const answer = await review(hook.url, {
        ...apps[0],
        metadata: { name: "direct", namespace: NS },
        spec: { image: "", replicas: 11, port: 70000, serviceType: "LoadBalancer" },
      });
      log(`Pepr's validator, called directly: ${JSON.stringify((answer as { response?: unknown }).response)}`);
    }

    // Defaulting: no replicas / port / serviceType.
    const defaulted = await rest.request<WebApp>("POST", path, {
      body: { ...apps[0], metadata: { name: "defaulted", namespace: NS }, spec: { image: "nginx:1.27" } },
    });
    log(
      `created without replicas/port/serviceType -> spec ${JSON.stringify(defaulted.spec)}, annotations ${JSON.stringify(defaulted.metadata.annotations)}`,
    );

    // Self-heal: delete a Deployment, time until a new one (new uid) exists.
    const heal: number[] = [];
    for (let i = 0; i < 10; i++) {
      const name = `app-${i}`;
      const old = await rest.request<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/${name}`);
      const h0 = performance.now();
      await rest.request("DELETE", `/apis/apps/v1/namespaces/${NS}/deployments/${name}`);
      for (;;) {
        try {
          const now = await rest.request<Deployment>("GET", `/apis/apps/v1/namespaces/${NS}/deployments/${name}`);
          if (now.metadata.uid !== old.metadata.uid) break;
        } catch {
          // not there yet
        }
        if (performance.now() - h0 > 30_000) throw new Error(`Deployment ${name} did not come back within 30 s`);
        await sleep(5);
      }
      heal.push(performance.now() - h0);
    }
    log(
      `self-heal (Deployment deleted -> new one exists, polled every 5 ms), 10 runs: p50 ${percentile(heal, 50).toFixed(1)} ms, max ${Math.max(...heal).toFixed(1)} ms: ${heal.map((h) => h.toFixed(0)).join(", ")}`,
    );
    // A Service too.
    const s0 = performance.now();
    await rest.request("DELETE", `/api/v1/namespaces/${NS}/services/app-11`);
    for (;;) {
      try {
        await rest.request("GET", `/api/v1/namespaces/${NS}/services/app-11`);
        break;
      } catch {
        await sleep(5);
      }
      if (performance.now() - s0 > 30_000) throw new Error("Service app-11 did not come back");
    }
    log(`self-heal of a Service: ${(performance.now() - s0).toFixed(1)} ms`);

    for (const p of processTree(pepr.proc.pid)) {
      const work = pepr.pids().includes(p.pid) ? " <- pids()" : "";
      log(`  pid ${p.pid} rss ${mib(rssBytes(p.pid))}${work}: ${p.cmdline.slice(0, 100)}`);
    }
    for (const tr of trackers) await tr.stop();
    log(`pepr dev output (tail):\n${pepr.proc.output.trim().split("\n").slice(-25).join("\n")}`);

    t0 = performance.now();
    await pepr.stop();
    log(`pepr stopped in ${(performance.now() - t0).toFixed(0)} ms`);
    const hooks = await rest.request<{ items: unknown[] }>(
      "GET",
      "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations",
    );
    const mhooks = await rest.request<{ items: unknown[] }>(
      "GET",
      "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations",
    );
    log(`webhook configurations left: validating ${hooks.items.length}, mutating ${mhooks.items.length}`);
    await rest.request("POST", path, { body: { ...apps[0], metadata: { name: "after-stop", namespace: NS } } });
    log("a WebApp can be created after stop (no dangling webhook)");
  } finally {
    await pepr?.stop();
    await rest.close();
    await cp.stop();
  }
  const left = peprProcesses();
  log(left ? `LEFTOVER Pepr processes:\n${left}` : "no Pepr processes left (ps aux | grep -i pepr)");
  if (left) process.exitCode = 1;
}

await main();

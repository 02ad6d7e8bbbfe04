/**
 * The admission webhooks end to end: a real kube-apiserver calls the real HTTPS server of a manager
 * running in this process, registered by URL (`https://127.0.0.1:<port>`) as `run --install` does.
 *
 * Covered: denials naming each bad field (as kubectl shows them and as the API returns them),
 * defaulting (stored object and the JSONPatch itself), warnings, bad requests straight to the port,
 * metrics, a second replica serving the same certificate, renewal of a short-lived certificate under
 * a steady stream of admissions, a CA rotation (the new CA trusted everywhere before it signs what is
 * served) under a steady stream of admissions, and cert-manager mode (certificate files, reloaded without restart).
 */
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { mkdirSync, mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { request as httpRequest } from "node:http";
import { request as httpsRequest } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { connect } from "node:tls";
import { installCrds, installWebhookConfigurations } from "../../cli/install.ts";
import { ApiError, isNotFound, objectPath, RestClient } from "../../core/runtime.ts";
import { type WebApp, WebAppKind } from "../../plugins/webapp/api.ts";
import { webAppPlugin } from "../../plugins/webapp/index.ts";
import { FINALIZER } from "../../plugins/webapp/reconciler.ts";
import { splitPem } from "../../webhooks/certs/rotation.ts";
import { generateTls } from "../../webhooks/index.ts";
import { type ControlPlane, ensureTools, freePort, startControlPlane, type Tools } from "../controlplane/index.ts";
import { admissionReview, type ReviewOptions, WEBAPP_RESOURCE } from "../support/admission-review.ts";
import { createNamespace, fetchText, metricValue } from "../support/cluster.ts";
import { kubectlFor } from "../support/kubectl.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

const MUTATE = "/mutate-webapp-example-com-v1-webapp";
const VALIDATE = "/validate-webapp-example-com-v1-webapp";
const APPS = "wh-apps";
const HOSTS = "127.0.0.1,localhost";

let cp: ControlPlane;
let rest: RestClient;
let tools: Tools;

before(async () => {
  // No kube-controller-manager: admission needs none, and nothing here waits for pods.
  [cp, tools] = await Promise.all([startControlPlane({ controllerManager: false }), ensureTools()]);
  rest = await RestClient.create(cp.kubeConfig);
  await installCrds(rest, [webAppPlugin]);
  await createNamespace(cp.kubeConfig, APPS);
});
after(async () => {
  await rest?.close();
  await cp?.stop();
});

// ---- helpers ----------------------------------------------------------------------------------

const { kubectl } = kubectlFor(
  () => tools.kubectl,
  () => cp,
);

/** A WebApp manifest (JSON is YAML) for `kubectl apply -f -`. */
function webAppManifest(name: string, spec: Record<string, unknown>): string {
  return JSON.stringify({ apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name, namespace: APPS }, spec });
}

async function getWebApp(name: string): Promise<WebApp | undefined> {
  try {
    return await rest.request<WebApp>("GET", objectPath(WebAppKind, name, APPS));
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

/** A server-side dry-run create: goes through admission (sideEffects None), stores nothing. */
function dryRunCreate(name: string, spec: Record<string, unknown>, client = rest): Promise<WebApp> {
  return client.request<WebApp>("POST", `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`, {
    query: { dryRun: "All" },
    body: { apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name, namespace: APPS }, spec },
  });
}

/** The error a request fails with (it must fail). */
async function failure(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    assert.ok(err instanceof ApiError, String(err));
    return err;
  }
  assert.fail("the request was admitted");
}

interface Answer {
  status: number;
  text: string;
  json: Record<string, unknown> | undefined;
}

/** One request straight to the webhook port over TLS, verified with `ca`, on a fresh connection. */
function callWebhook(
  port: number,
  ca: string,
  o: { method?: string; path: string; body?: string | Buffer; contentType?: string },
): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host: "127.0.0.1",
        port,
        ca,
        agent: false,
        method: o.method ?? "POST",
        path: o.path,
        headers: o.body !== undefined ? { "content-type": o.contentType ?? "application/json" } : {},
      },
      (res) => {
        let text = "";
        res.setEncoding("utf8").on("data", (d: string) => {
          text += d;
        });
        res.on("end", () => {
          let json: Record<string, unknown> | undefined;
          try {
            json = JSON.parse(text) as Record<string, unknown>;
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, text, json });
        });
      },
    );
    req.on("error", reject);
    req.end(o.body);
  });
}

/** The reviews sent straight to the port: a WebApp "direct" in APPS, created by user "admin". */
const DIRECT: ReviewOptions = { name: "direct", namespace: APPS, username: "admin" };

/** The certificate a TLS handshake with the port presents, verified against `ca` for 127.0.0.1. */
function servedCert(port: number, ca: string): Promise<{ fingerprint: string; serial: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", port, ca }, () => {
      const peer = socket.getPeerCertificate();
      socket.end();
      resolve({ fingerprint: peer.fingerprint256, serial: peer.serialNumber });
    });
    socket.on("error", reject);
  });
}

const fingerprintOf = (pem: string) => new X509Certificate(pem).fingerprint256;

interface WebhookManager {
  tm: TestManager;
  port: number;
  /** The CA that verifies the served certificate. */
  ca(): string;
}

/** A manager with the WebApp plugin and its webhook server on 127.0.0.1:<free port>. */
async function startWebhookManager(flags: string[]): Promise<WebhookManager> {
  const port = await freePort();
  const tm = await startTestManager(cp.kubeconfigPath, [webAppPlugin], {
    flags: ["--webhook-bind-address", `127.0.0.1:${port}`, "--webhook-hosts", HOSTS, ...flags],
  });
  const ca = () => {
    const current = tm.webhooks.certs?.current()?.ca;
    assert.ok(current, "the certificate source knows the CA");
    return current;
  };
  return { tm, port, ca };
}

/** Registers the webhook configurations `<name>-mutating`/`-validating` by URL, once the server serves. */
async function register(m: WebhookManager, name: string, ownNamespace: string): Promise<void> {
  await waitFor("the webhook server to serve", () => m.tm.webhooks.server?.serving);
  await installWebhookConfigurations(rest, m.tm.webhooks, {
    url: `https://127.0.0.1:${m.port}`,
    name,
    ownNamespace,
    signal: AbortSignal.timeout(30_000),
  });
}

async function unregister(name: string): Promise<void> {
  for (const type of ["mutating", "validating"]) {
    try {
      await rest.request("DELETE", `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${name}-${type}`);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
  }
}

const webhookCount = async (m: WebhookManager, path: string) =>
  metricValue((await fetchText(m.tm.metricsUrl)).text, "controller_runtime_webhook_requests_total", { webhook: path });

/** Waits until the API server calls both webhooks of `m` (configuration changes reach it through a watch). */
async function waitUntilCalled(m: WebhookManager): Promise<void> {
  await waitFor("the API server to call both webhooks", async () => {
    const [mutating, validating] = [await webhookCount(m, MUTATE), await webhookCount(m, VALIDATE)];
    await dryRunCreate("probe", { image: "nginx:1.27" });
    return (await webhookCount(m, MUTATE)) > mutating && (await webhookCount(m, VALIDATE)) > validating;
  });
}

// ---- self-managed certificates: admission through the API server ------------------------------

describe("admission through the API server (self-managed certificates)", () => {
  const NS = "wh-main";
  const CONFIG = "kp-main";
  const flags = ["--leader-elect", "--leader-election-namespace", NS, "--webhook-configuration-name", CONFIG];
  let main: WebhookManager;

  before(async () => {
    await createNamespace(cp.kubeConfig, NS);
    main = await startWebhookManager(flags);
    await register(main, CONFIG, NS);
    await waitUntilCalled(main);
  });
  after(async () => {
    await unregister(CONFIG);
    await main?.tm.stop();
  });

  it("denies replicas 11, port 70000, a missing image and serviceType LoadBalancer, naming the field", async (t) => {
    const cases: { name: string; spec: Record<string, unknown>; says: string; args?: string[] }[] = [
      {
        name: "too-many",
        spec: { image: "nginx:1.27", replicas: 11 },
        says: 'The WebApp "too-many" is invalid: spec.replicas: Invalid value: 11: replicas must be between 1 and 10',
      },
      {
        name: "bad-port",
        spec: { image: "nginx:1.27", port: 70000 },
        says: 'The WebApp "bad-port" is invalid: spec.port: Invalid value: 70000: port must be between 1 and 65535',
      },
      {
        name: "no-image",
        spec: { replicas: 2 },
        says: 'The WebApp "no-image" is invalid: spec.image: Required value',
        // kubectl's own client-side schema check would stop this one before the API server sees it.
        args: ["--validate=false"],
      },
      {
        name: "load-balancer",
        spec: { image: "nginx:1.27", serviceType: "LoadBalancer" },
        says: 'The WebApp "load-balancer" is invalid: spec.serviceType: Invalid value: "LoadBalancer": serviceType must be one of ClusterIP, NodePort',
      },
    ];
    for (const c of cases) {
      const run = await kubectl(["apply", ...(c.args ?? []), "-f", "-"], webAppManifest(c.name, c.spec));
      t.diagnostic(`${c.name}: ${run.stderr.trim()}`);
      assert.notEqual(run.code, 0, `${c.name} was admitted: ${run.stdout}`);
      assert.ok(run.stderr.startsWith(c.says), `${c.name}: ${run.stderr}`);
      assert.equal(await getWebApp(c.name), undefined, `${c.name} was not stored`);
    }
  });

  it("the denial comes from the mutating webhook; kubectl shows its causes without the webhook's name", async (t) => {
    const err = await failure(dryRunCreate("too-many", { image: "nginx:1.27", replicas: 11 }));
    t.diagnostic(`API: ${err.status?.message}`);
    assert.equal(err.code, 422);
    assert.equal(err.reason, "Invalid");
    assert.equal(
      err.status?.message,
      'admission webhook "mwebapp.webapp.example.com" denied the request: ' +
        'WebApp.webapp.example.com "too-many" is invalid: spec.replicas: Invalid value: 11: replicas must be between 1 and 10',
    );
    assert.deepEqual(err.status?.details?.causes, [
      { reason: "FieldValueInvalid", message: "Invalid value: 11: replicas must be between 1 and 10", field: "spec.replicas" },
    ]);
    // kubectl renders an Invalid status from its causes (details.kind, details.name, each field) and
    // drops the message, so the webhook's name is not shown; the wording is ours, not the CRD's
    // ("should be less than or equal to 10").
    const run = await kubectl(["apply", "-f", "-"], webAppManifest("too-many", { image: "nginx:1.27", replicas: 11 }));
    assert.equal(
      run.stderr.trim(),
      'The WebApp "too-many" is invalid: spec.replicas: Invalid value: 11: replicas must be between 1 and 10',
    );
    assert.doesNotMatch(run.stderr, /admission webhook|less than or equal/);
  });

  it("reports both fields an update breaks at once, and keeps the stored object", async () => {
    const created = await kubectl(["apply", "-f", "-"], webAppManifest("two-bad", { image: "nginx:1.27", replicas: 2 }));
    assert.equal(created.code, 0, created.stderr);
    const run = await kubectl(["apply", "-f", "-"], webAppManifest("two-bad", { image: "nginx:1.27", replicas: 11, port: 0 }));
    assert.notEqual(run.code, 0, run.stdout);
    assert.equal(
      run.stderr.trim(),
      [
        'The WebApp "two-bad" is invalid: ',
        "* spec.replicas: Invalid value: 11: replicas must be between 1 and 10",
        "* spec.port: Invalid value: 0: port must be between 1 and 65535",
      ].join("\n"),
    );
    const stored = await getWebApp("two-bad");
    assert.equal(stored?.spec.replicas, 2);
    assert.equal(stored?.spec.port, 8080);
  });

  it("stores a WebApp without replicas, port and serviceType with the defaults", async () => {
    const run = await kubectl(["apply", "-f", "-"], webAppManifest("defaulted", { image: "nginx:1.27" }));
    assert.equal(run.code, 0, run.stderr);
    const stored = await getWebApp("defaulted");
    assert.deepEqual(stored?.spec, { image: "nginx:1.27", replicas: 1, port: 8080, serviceType: "ClusterIP" });
  });

  it("a new WebApp carries its controller's finalizer from its create on: admission adds it, no patch needed", async () => {
    const created = await rest.request<WebApp>("POST", `/apis/webapp.example.com/v1/namespaces/${NS}/webapps`, {
      body: {
        apiVersion: "webapp.example.com/v1",
        kind: "WebApp",
        metadata: { name: "finalized" },
        spec: { image: "nginx:1.27" },
      },
      query: { dryRun: "All" },
    });
    assert.deepEqual(created.metadata.finalizers, [FINALIZER], "the API server's answer to the create already has it");
    const other = await rest.request<WebApp>("POST", `/apis/webapp.example.com/v1/namespaces/${NS}/webapps`, {
      body: {
        apiVersion: "webapp.example.com/v1",
        kind: "WebApp",
        metadata: { name: "finalized-too", finalizers: ["example.com/keep"] },
        spec: { image: "nginx:1.27" },
      },
      query: { dryRun: "All" },
    });
    assert.deepEqual(other.metadata.finalizers, ["example.com/keep", FINALIZER], "added after the ones it had");
  });

  it("the mutating path answers a spec lacking them with add operations for exactly those three fields and the finalizer", async () => {
    const uid = "0f6e2c4d-defaults";
    const answer = await callWebhook(main.port, main.ca(), {
      path: MUTATE,
      body: JSON.stringify(admissionReview(uid, { image: "nginx:1.27" }, DIRECT)),
    });
    assert.equal(answer.status, 200, answer.text);
    const response = answer.json?.response as { uid: string; allowed: boolean; patchType?: string; patch?: string };
    assert.equal(answer.json?.apiVersion, "admission.k8s.io/v1");
    assert.equal(answer.json?.kind, "AdmissionReview");
    assert.equal(response.uid, uid);
    assert.equal(response.allowed, true);
    assert.equal(response.patchType, "JSONPatch");
    const ops = JSON.parse(Buffer.from(response.patch ?? "", "base64").toString("utf8")) as { op: string; path: string }[];
    assert.deepEqual(
      ops.sort((a, b) => a.path.localeCompare(b.path)),
      [
        // The controller's finalizer, added on CREATE so the controller need not patch it in.
        { op: "add", path: "/metadata/finalizers", value: [FINALIZER] },
        { op: "add", path: "/spec/port", value: 8080 },
        { op: "add", path: "/spec/replicas", value: 1 },
        { op: "add", path: "/spec/serviceType", value: "ClusterIP" },
      ],
    );
    // A complete spec needs no spec patch: only the finalizer is added.
    const full = await callWebhook(main.port, main.ca(), {
      path: MUTATE,
      body: JSON.stringify(
        admissionReview("full", { image: "nginx:1.27", replicas: 3, port: 80, serviceType: "NodePort" }, DIRECT),
      ),
    });
    const fullResponse = full.json?.response as { patch?: string };
    assert.deepEqual(JSON.parse(Buffer.from(fullResponse.patch ?? "", "base64").toString("utf8")), [
      { op: "add", path: "/metadata/finalizers", value: [FINALIZER] },
    ]);
  });

  it("admits an image without a tag and kubectl prints the warning", async () => {
    const run = await kubectl(["apply", "-f", "-"], webAppManifest("untagged", { image: "nginx" }));
    assert.equal(run.code, 0, run.stderr);
    assert.match(run.stdout, /webapp\.webapp\.example\.com\/untagged created/);
    assert.match(run.stderr, /^Warning: spec\.image "nginx" has no tag: the node pulls ":latest"/m);
    assert.equal((await getWebApp("untagged"))?.spec.image, "nginx");
  });

  it("answers bad requests with 4xx and a message, and keeps serving", async (t) => {
    const ca = main.ca();
    const valid = admissionReview("bad-requests", { image: "nginx:1.27" }, DIRECT);
    const cases: { what: string; call: Parameters<typeof callWebhook>[2]; status: number; says: RegExp }[] = [
      {
        what: "malformed JSON",
        call: { path: MUTATE, body: '{"apiVersion": "admission.k8s.io/v1",' },
        status: 400,
        says: /not valid JSON/,
      },
      {
        what: "not an AdmissionReview",
        call: { path: VALIDATE, body: JSON.stringify({ ...valid, request: { ...valid.request, uid: undefined } }) },
        status: 400,
        says: /not an AdmissionReview v1: request\.uid: /,
      },
      {
        what: "an object that is not a JSON object",
        call: {
          path: VALIDATE,
          body: JSON.stringify({ ...valid, request: { ...valid.request, object: ["not", "an", "object"] } }),
        },
        status: 400,
        says: /not an AdmissionReview v1: request\.object: must be a JSON object, got an array/,
      },
      {
        what: "an old object that is a string",
        call: { path: VALIDATE, body: JSON.stringify({ ...valid, request: { ...valid.request, oldObject: "web" } }) },
        status: 400,
        says: /not an AdmissionReview v1: request\.oldObject: must be a JSON object, got string/,
      },
      {
        what: "a 10 MB body",
        call: { path: MUTATE, body: JSON.stringify({ ...valid, padding: "x".repeat(10 * 1024 * 1024) }) },
        status: 413,
        says: /larger than the 6 MiB limit/,
      },
      {
        what: "text/plain",
        call: { path: MUTATE, body: JSON.stringify(valid), contentType: "text/plain" },
        status: 415,
        says: /Content-Type must be application\/json, got text\/plain/,
      },
      {
        what: "an unknown path",
        call: { path: "/mutate-nothing", body: JSON.stringify(valid) },
        status: 404,
        says: new RegExp(`no webhook at /mutate-nothing; served paths: .*${MUTATE}.*${VALIDATE}|${VALIDATE}.*${MUTATE}`),
      },
      {
        what: "a review of another kind",
        call: {
          path: MUTATE,
          // A Deployment's kind on the WebApp resource: only the kind says it is not a WebApp.
          body: JSON.stringify(
            admissionReview(
              "other-kind",
              {},
              { ...DIRECT, kind: { group: "apps", version: "v1", kind: "Deployment" }, resource: WEBAPP_RESOURCE },
            ),
          ),
        },
        status: 400,
        says: /admits webapp\.example\.com\/v1\/WebApp, not apps\/v1\/Deployment/,
      },
      { what: "GET", call: { method: "GET", path: MUTATE }, status: 405, says: /GET .*admission webhooks take POST requests/ },
    ];
    for (const c of cases) {
      const answer = await callWebhook(main.port, ca, c.call);
      t.diagnostic(`${c.what}: ${answer.status} ${answer.text.slice(0, 200)}`);
      assert.equal(answer.status, c.status, `${c.what}: ${answer.text}`);
      assert.match(answer.text, c.says, c.what);
    }
    // Plain HTTP to the TLS port: refused or answered with an error, never a crash.
    const plain = await new Promise<string>((resolve) => {
      const req = httpRequest({ host: "127.0.0.1", port: main.port, method: "POST", path: MUTATE, agent: false }, (res) => {
        res.resume();
        resolve(`status ${res.statusCode}`);
      });
      req.on("error", (err) => resolve(`error ${err.message}`));
      req.end(JSON.stringify(valid));
    });
    t.diagnostic(`plain HTTP: ${plain}`);
    assert.match(plain, /^error |^status [45]\d\d$/);

    const answer = await callWebhook(main.port, ca, { path: VALIDATE, body: JSON.stringify(valid) });
    assert.equal(answer.status, 200, answer.text);
    assert.deepEqual(answer.json?.response, { uid: "bad-requests", allowed: true });
    assert.ok(main.tm.webhooks.server?.serving);
  });

  it("exposes request counts by code, latency and in-flight requests on /metrics", async () => {
    const { status, text } = await fetchText(main.tm.metricsUrl);
    assert.equal(status, 200);
    for (const path of [MUTATE, VALIDATE]) {
      assert.ok(metricValue(text, "controller_runtime_webhook_requests_total", { webhook: path, code: "200" }) > 0, path);
      assert.ok(metricValue(text, "controller_runtime_webhook_latency_seconds_count", { webhook: path }) > 0, path);
      assert.ok(metricValue(text, "controller_runtime_webhook_latency_seconds_bucket", { webhook: path, le: "+Inf" }) > 0, path);
      assert.match(text, new RegExp(`^controller_runtime_webhook_requests_in_flight\\{webhook="${path}"\\} 0$`, "m"));
    }
    // The bad requests above that reached a webhook: the wrong shape and the wrong kind.
    assert.ok(metricValue(text, "controller_runtime_webhook_requests_total", { code: "400" }) >= 2);
    assert.match(text, /^# TYPE controller_runtime_webhook_latency_seconds histogram$/m);
  });

  it("a second replica serves the same certificate from the Secret and is ready", async (t) => {
    const second = await startWebhookManager(flags);
    t.after(() => second.tm.stop());
    await waitFor("the second replica to serve", () => second.tm.webhooks.server?.serving);
    const [first, other] = [await servedCert(main.port, main.ca()), await servedCert(second.port, main.ca())];
    t.diagnostic(`both serve ${first.fingerprint}`);
    assert.equal(other.fingerprint, first.fingerprint);
    assert.equal(other.serial, first.serial);
    const secret = await rest.request<{ data: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${NS}/secrets/kubeplug-webhook-tls`,
    );
    assert.equal(fingerprintOf(Buffer.from(secret.data["tls.crt"] ?? "", "base64").toString("utf8")), first.fingerprint);
    const ready = await waitFor("the second replica's /readyz", async () => {
      const r = await fetchText(`${second.tm.healthUrl}/readyz?verbose`);
      return r.status === 200 && r.text;
    });
    assert.match(ready, /^\[\+\]webhook ok$/m);
    // It stands by: only the leader writes the Secret and the caBundle.
    assert.equal(metricValue((await fetchText(second.tm.metricsUrl)).text, "leader_election_master_status"), 0);
  });

  it("admits 200 dry-run creates in a row through both webhooks, each defaulted, none lost (timings are in bench/)", async () => {
    const [mutating, validating] = [await webhookCount(main, MUTATE), await webhookCount(main, VALIDATE)];
    for (let i = 0; i < 200; i++) {
      const admitted = await dryRunCreate(`burst-${i}`, { image: "nginx:1.27", replicas: 2 });
      assert.deepEqual(admitted.spec, { image: "nginx:1.27", replicas: 2, port: 8080, serviceType: "ClusterIP" }, `create ${i}`);
      assert.deepEqual(admitted.metadata.finalizers, [FINALIZER], `create ${i}`);
    }
    assert.ok((await webhookCount(main, MUTATE)) - mutating >= 200, "the defaulting webhook answered every create");
    assert.ok((await webhookCount(main, VALIDATE)) - validating >= 200, "the validating webhook answered every create");
    assert.equal(
      metricValue((await fetchText(main.tm.metricsUrl)).text, "controller_runtime_webhook_requests_total", { code: "500" }),
      0,
      "no handler failed",
    );
  });
});

// ---- self-managed certificates: renewal -------------------------------------------------------

describe("renewal of a short-lived certificate", () => {
  const NS = "wh-renew";
  const CONFIG = "kp-renew";
  let m: WebhookManager;

  before(async () => {
    await createNamespace(cp.kubeConfig, NS);
    // Renewed 30 s before a 40 s expiry: about 10 s after it was issued.
    m = await startWebhookManager([
      "--leader-election-namespace",
      NS,
      "--webhook-configuration-name",
      CONFIG,
      "--webhook-cert-validity",
      "40s",
      "--webhook-cert-renew-before",
      "30s",
    ]);
    await register(m, CONFIG, NS);
    await waitUntilCalled(m);
  });
  after(async () => {
    await unregister(CONFIG);
    await m?.tm.stop();
  });

  it("serves a new certificate from the same CA while ~20 admissions a second all succeed", async (t) => {
    const ca = m.ca();
    const first = await servedCert(m.port, ca);
    let switched = false;
    let before = 0;
    let afterSwitch = 0;
    const failures: string[] = [];
    const inFlight = new Set<Promise<void>>();
    // A steady stream of dry-run creates, one every 50 ms, until 60 have gone out after the switch.
    const stream = (async () => {
      for (let i = 0; !switched || afterSwitch < 60; i++) {
        if (switched) afterSwitch++;
        else before++;
        const p: Promise<void> = dryRunCreate(`renewal-${i}`, { image: "nginx:1.27" })
          .then(() => undefined)
          .catch((err: unknown) => {
            failures.push(String(err));
          })
          .finally(() => inFlight.delete(p));
        inFlight.add(p);
        await new Promise((r) => setTimeout(r, 50));
      }
      await Promise.all(inFlight);
    })();
    let next: { fingerprint: string; serial: string };
    try {
      next = await waitFor(
        "a renewed certificate on the port",
        async () => {
          const served = await servedCert(m.port, ca);
          return served.fingerprint !== first.fingerprint && served;
        },
        { timeoutMs: 60_000, intervalMs: 200 },
      );
    } finally {
      switched = true;
      await stream;
    }
    const total = before + afterSwitch;
    t.diagnostic(`serial ${first.serial} -> ${next.serial}`);
    t.diagnostic(`${total} dry-run creates (${before} before the switch, ${afterSwitch} after), ${failures.length} failed`);
    assert.deepEqual(failures, []);
    assert.ok(before > 0 && afterSwitch === 60, `the stream ran across the switch (${before} before, ${afterSwitch} after)`);
    assert.notEqual(next.serial, first.serial);
    // Same CA: the handshake above verified the new certificate with the old CA; the Secret and the
    // caBundle the API server uses still hold it.
    const secret = await rest.request<{ data: Record<string, string> }>(
      "GET",
      `/api/v1/namespaces/${NS}/secrets/kubeplug-webhook-tls`,
    );
    // Compared as certificates, not bytes: a PEM's line endings (\r\n from node-forge) may differ.
    const pem = (text: string | undefined) => (text ?? "").replace(/\r\n/g, "\n").trim();
    assert.equal(pem(Buffer.from(secret.data["ca.crt"] ?? "", "base64").toString("utf8")), pem(ca));
    assert.equal(pem(m.ca()), pem(ca));
    for (const type of ["mutating", "validating"]) {
      const config = await rest.request<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(
        "GET",
        `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${CONFIG}-${type}`,
      );
      assert.equal(pem(Buffer.from(config.webhooks[0]?.clientConfig.caBundle ?? "", "base64").toString("utf8")), pem(ca), type);
    }
  });
});

// ---- self-managed certificates: CA rotation ---------------------------------------------------

describe("rotation of a short-lived CA", () => {
  const NS = "wh-ca";
  const CONFIG = "kp-ca";
  let m: WebhookManager;

  before(async () => {
    await createNamespace(cp.kubeConfig, NS);
    // CA 30 s, serving certificates 20 s renewed 5 s ahead: a new CA joins the bundle 10 s before
    // the first expires (about 20 s in); the old one leaves it when it expires (about 30 s in).
    m = await startWebhookManager([
      "--leader-election-namespace",
      NS,
      "--webhook-configuration-name",
      CONFIG,
      "--webhook-cert-validity",
      "20s",
      "--webhook-cert-renew-before",
      "5s",
      "--webhook-ca-validity",
      "30s",
    ]);
    await register(m, CONFIG, NS);
    await waitUntilCalled(m);
  });
  after(async () => {
    await unregister(CONFIG);
    await m?.tm.stop();
  });

  it("adds the new CA to every caBundle before serving a certificate it signed, drops the old CA at its expiry, 0 failed admissions", async (t) => {
    const read = async () => {
      const secret = await rest.request<{ data: Record<string, string> }>(
        "GET",
        `/api/v1/namespaces/${NS}/secrets/kubeplug-webhook-tls`,
      );
      const pem = (key: string) => Buffer.from(secret.data[key] ?? "", "base64").toString("utf8");
      const cas = splitPem(pem("ca.crt")).map((p) => new X509Certificate(p));
      const serving = new X509Certificate(pem("tls.crt"));
      const signer = cas.find((ca) => serving.checkIssued(ca) && serving.verify(ca.publicKey))?.fingerprint256;
      const bundles: string[][] = [];
      for (const type of ["mutating", "validating"]) {
        const config = await rest.request<{ webhooks: { clientConfig: { caBundle?: string } }[] }>(
          "GET",
          `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${CONFIG}-${type}`,
        );
        for (const w of config.webhooks) {
          const inBundle = splitPem(Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString("utf8"));
          bundles.push(inBundle.map((p) => new X509Certificate(p).fingerprint256));
        }
      }
      return { cas: cas.map((ca) => ca.fingerprint256), signer, bundles };
    };
    const first = await read();
    assert.equal(first.cas.length, 1, "one CA to begin with");
    const oldCa = first.cas[0] as string;
    const steps: string[] = [];
    const untrusted: string[] = [];
    const failures: string[] = [];
    let admitted = 0;
    let stop = false;
    // 8 dry-run creates in flight all along.
    const load = Promise.all(
      Array.from({ length: 8 }, async (_, w) => {
        for (let i = 0; !stop; i++) {
          await dryRunCreate(`ca-${w}-${i}`, { image: "nginx:1.27" }).then(
            () => admitted++,
            (err: unknown) => failures.push(String(err)),
          );
        }
      }),
    );
    const note = (step: string) => {
      if (steps.at(-1) !== step) steps.push(step);
    };
    try {
      await waitFor(
        "the old CA to leave the bundle after the switch",
        async () => {
          const now = await read();
          // Read in this order, a served certificate's CA must already be in every caBundle.
          if (!now.signer || !now.bundles.every((b) => b.includes(now.signer as string))) untrusted.push(JSON.stringify(now));
          const newCa = now.cas.find((ca) => ca !== oldCa);
          if (!newCa) return false;
          if (now.cas.includes(oldCa)) {
            note(now.signer === newCa ? "serving from the new CA, both trusted" : "both CAs in the bundle, serving from the old");
            return false;
          }
          note("only the new CA");
          return now.signer === newCa && now.bundles.every((b) => b.length === 1 && b[0] === newCa);
        },
        { timeoutMs: 90_000, intervalMs: 100 },
      );
    } finally {
      stop = true;
      await load;
    }
    t.diagnostic(`steps: ${steps.join(" -> ")}; ${admitted} dry-run creates admitted, ${failures.length} failed`);
    assert.deepEqual(untrusted, [], "the served certificate's CA is in every caBundle");
    // The steps seen, in order; a poll every 100 ms on a loaded machine may miss the short middle
    // one (serving from the new CA while the old is still trusted). What must hold at every poll is
    // checked above: the served certificate's CA is in every caBundle.
    const order = ["both CAs in the bundle, serving from the old", "serving from the new CA, both trusted", "only the new CA"];
    assert.equal(steps[0], order[0], `the new CA joined the bundle first: ${steps.join(" -> ")}`);
    assert.equal(steps.at(-1), order[2], `it ended with only the new CA: ${steps.join(" -> ")}`);
    assert.deepEqual(
      steps,
      order.filter((step) => steps.includes(step)),
      `the steps came in order: ${steps.join(" -> ")}`,
    );
    assert.deepEqual(failures, []);
    assert.ok(admitted > 0);
  });
});

// ---- cert-manager mode: certificate files -----------------------------------------------------

describe("cert-manager mode (--webhook-cert-dir)", () => {
  const NS = "wh-files";
  const CONFIG = "kp-files";
  let dir: string;
  let m: WebhookManager;
  let version = 0;
  /** The CA (and its key, which cert-manager keeps to itself) of the files. */
  let issuer: { ca: string; caKey: string };

  /** Writes the files as the kubelet updates a mounted Secret: a new directory, then one atomic symlink swap. */
  function writeCertFiles(files: Record<string, string>): void {
    const target = `..v${++version}`;
    mkdirSync(join(dir, target));
    for (const [name, content] of Object.entries(files)) writeFileSync(join(dir, target, name), content);
    symlinkSync(target, join(dir, "..data_tmp"));
    renameSync(join(dir, "..data_tmp"), join(dir, "..data"));
    if (version === 1) for (const name of Object.keys(files)) symlinkSync(join("..data", name), join(dir, name));
  }

  before(async () => {
    await createNamespace(cp.kubeConfig, NS);
    dir = mkdtempSync(join(tmpdir(), "kubeplug-webhook-certs-"));
    m = await startWebhookManager([
      "--leader-election-namespace",
      NS,
      "--webhook-configuration-name",
      CONFIG,
      "--webhook-cert-dir",
      dir,
    ]);
  });
  after(async () => {
    await unregister(CONFIG);
    await m?.tm.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("/readyz fails with a webhook line until the files hold a certificate, then passes; the server serves it", async (t) => {
    const failing = await waitFor("/readyz to answer", async () => {
      const r = await fetchText(`${m.tm.healthUrl}/readyz`);
      return r.status === 500 && /^\[-\]webhook failed: /m.test(r.text) && r.text;
    });
    t.diagnostic(failing.split("\n").find((l) => l.includes("webhook")) ?? "");
    assert.match(failing, /^\[-\]webhook failed: the webhook server is not serving yet \(waiting for its certificate\)$/m);
    assert.equal(m.tm.webhooks.server?.serving, false);

    const tls = generateTls({ hosts: HOSTS.split(",") });
    issuer = { ca: tls.ca, caKey: tls.caKey };
    writeCertFiles({ "tls.crt": tls.cert, "tls.key": tls.key, "ca.crt": tls.ca });
    await waitFor("/readyz to pass", async () => (await fetchText(`${m.tm.healthUrl}/readyz`)).status === 200);
    assert.equal((await servedCert(m.port, tls.ca)).fingerprint, fingerprintOf(tls.cert));
  });

  it("serves replaced files without a restart; creates no Secret; leaves the caBundle alone", async (t) => {
    const ca = m.ca();
    const server = m.tm.webhooks.server;
    await register(m, CONFIG, NS);
    await waitUntilCalled(m);
    const denied = await failure(dryRunCreate("too-many", { image: "nginx:1.27", replicas: 11 }));
    assert.match(denied.status?.message ?? "", /^admission webhook "mwebapp\.webapp\.example\.com" denied the request: /);
    const configs = async () =>
      Promise.all(
        ["mutating", "validating"].map((type) =>
          rest.request<{
            metadata: { resourceVersion: string; managedFields?: { manager: string }[] };
            webhooks: { clientConfig: { caBundle?: string } }[];
          }>("GET", `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${CONFIG}-${type}`),
        ),
      );
    const registered = await configs();

    // cert-manager renews: a new key and certificate from the same CA, swapped in by the kubelet.
    assert.equal(ca, issuer.ca, "the CA comes from ca.crt");
    const renewed = generateTls({ hosts: HOSTS.split(","), caCert: issuer.ca, caKey: issuer.caKey });
    writeCertFiles({ "tls.crt": renewed.cert, "tls.key": renewed.key, "ca.crt": issuer.ca });
    const served = await waitFor("the new certificate on the port", async () => {
      const s = await servedCert(m.port, ca);
      return s.fingerprint === fingerprintOf(renewed.cert) && s;
    });
    t.diagnostic(`now serving serial ${served.serial}`);
    assert.equal(m.tm.webhooks.server, server, "the same server");
    assert.ok(server?.serving);
    await dryRunCreate("after-renewal", { image: "nginx:1.27" });
    const again = await failure(dryRunCreate("too-many", { image: "nginx:1.27", replicas: 11 }));
    assert.match(again.status?.message ?? "", /denied the request: .*spec\.replicas/);

    await assert.rejects(
      rest.request("GET", `/api/v1/namespaces/${NS}/secrets/kubeplug-webhook-tls`),
      (err: unknown) => isNotFound(err),
      "no Secret kubeplug-webhook-tls",
    );
    const now = await configs();
    for (const [i, config] of now.entries()) {
      assert.equal(config.metadata.resourceVersion, registered[i]?.metadata.resourceVersion, "the configuration was not written");
      assert.equal(config.webhooks[0]?.clientConfig.caBundle, Buffer.from(ca).toString("base64"));
      assert.deepEqual(
        [...new Set((config.metadata.managedFields ?? []).map((f) => f.manager))],
        ["kubeplug-install"],
        "only the installer wrote it",
      );
    }
  });
});

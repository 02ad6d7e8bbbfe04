/**
 * Helpers of the admission fault scenarios (admission.test.ts): bad AdmissionReviews sent straight to
 * a replica's webhook port, slow clients, dry-run creates through the API server, and reading the
 * webhook certificate Secret and configurations.
 */
import { X509Certificate } from "node:crypto";
import { type Agent, request as httpsRequest } from "node:https";
import { connect } from "node:tls";
import type { RestClient } from "../../core/runtime.ts";
import { splitPem } from "../../webhooks/certs/rotation.ts";
import { WEBHOOK_SERVER_DEFAULTS } from "../../webhooks/server.ts";
import { admissionReview, type ReviewOptions } from "../support/admission-review.ts";
import { APPS, CONFIG_PATHS, RELEASE_NS, TLS_SECRET_PATH, WEBAPPS_PATH, webApp } from "./support.ts";

export { CONFIG_PATHS };

export const MUTATE = "/mutate-webapp-example-com-v1-webapp";
export const VALIDATE = "/validate-webapp-example-com-v1-webapp";
export { RELEASE_NS };

/** How one request straight to the webhook port ended. */
export interface Answer {
  /** What was sent, e.g. "invalid JSON". */
  what: string;
  /** HTTP status; 0 when the connection ended without one. */
  status: number;
  /** `response.allowed` of an AdmissionReview answer. */
  allowed?: boolean;
  /** The answer's message (or the client error). */
  message: string;
  ms: number;
}

/** A 4xx, or an AdmissionReview that denies. */
export const refusedCleanly = (a: Answer) => (a.status >= 400 && a.status < 500) || (a.status === 200 && a.allowed === false);

/** The storm's reviews: a WebApp "storm" in APPS, created by user "storm". */
const STORM: ReviewOptions = { name: "storm", namespace: APPS, username: "storm" };

/** A bad request: what it is and how to send it. */
export interface BadRequest {
  what: string;
  method?: string;
  path: string;
  contentType?: string;
  /** The body, or a chunk sent `repeat` times with chunked encoding (no Content-Length). */
  body: string | Buffer;
  repeat?: number;
}

const nested = (depth: number, leaf: string) => `${'{"a":'.repeat(depth)}${leaf}${"}".repeat(depth)}`;
const oversized = Buffer.alloc(WEBHOOK_SERVER_DEFAULTS.bodyLimitBytes + 64 * 1024, 0x20);

/** The kinds of bad input of scenario 8, by index (each path alternates mutating and validating). */
export function badRequest(i: number): BadRequest {
  const path = i % 2 === 0 ? MUTATE : VALIDATE;
  const uid = `storm-${i}`;
  const good = admissionReview(uid, { image: "nginx:1.27" }, STORM);
  const kinds: (() => BadRequest)[] = [
    () => ({ what: "invalid JSON", path, body: '{"apiVersion": "admission.k8s.io/v1", "kind": "Admission' }),
    () => ({ what: "JSON that is not an object", path, body: "[1, 2, 3]" }),
    () => ({ what: "wrong apiVersion", path, body: JSON.stringify({ ...good, apiVersion: "admission.k8s.io/v1beta1" }) }),
    () => ({ what: "wrong kind", path, body: JSON.stringify({ ...good, kind: "Pod" }) }),
    () => ({ what: "no request", path, body: JSON.stringify({ apiVersion: good.apiVersion, kind: good.kind }) }),
    () => ({ what: "no uid", path, body: JSON.stringify({ ...good, request: { ...good.request, uid: undefined } }) }),
    () => ({
      what: "object not matching the schema",
      path,
      body: JSON.stringify(admissionReview(uid, { replicas: 50, port: "http", serviceType: "Mesh", extra: [1] }, STORM)),
    }),
    () => ({
      what: "a kind the webhook does not serve",
      path,
      body: JSON.stringify(
        admissionReview(uid, { image: "nginx:1.27" }, { ...STORM, kind: { group: "apps", version: "v1", kind: "Deployment" } }),
      ),
    }),
    () => ({ what: "wrong content type", path, contentType: "text/plain", body: JSON.stringify(good) }),
    () => ({ what: "over the body limit (Content-Length)", path, body: oversized }),
    () => ({ what: "over the body limit (chunked)", path, body: Buffer.alloc(256 * 1024, 0x20), repeat: 25 }),
    () => ({ what: "unknown path", path: "/mutate-nothing", body: JSON.stringify(good) }),
    () => ({ what: "GET", method: "GET", path, body: "" }),
    () => ({ what: "JSON nested 100,000 deep", path, body: nested(100_000, "1") }),
    () => ({
      what: "an image nested 20,000 deep",
      path,
      // Spliced in as text: JSON.stringify itself recurses too deep for it.
      body: JSON.stringify(admissionReview(uid, { image: "<deep>" }, STORM)).replace('"<deep>"', nested(20_000, "1")),
    }),
    () => ({ what: "a spec that is a string", path, body: JSON.stringify(admissionReview(uid, "nginx", STORM)) }),
  ];
  return (kinds[i % kinds.length] as () => BadRequest)();
}

/** Sends `req` to the webhook port and waits (at most `giveUpMs`) for the answer. */
export function send(port: number, ca: string, agent: Agent, req: BadRequest, giveUpMs: number): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (status: number, message: string, allowed?: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({
        what: req.what,
        status,
        message,
        ms: performance.now() - started,
        ...(allowed === undefined ? {} : { allowed }),
      });
    };
    const chunked = req.repeat !== undefined;
    const headers: Record<string, string | number> = { "content-type": req.contentType ?? "application/json" };
    if (!chunked) headers["content-length"] = Buffer.byteLength(req.body);
    const r = httpsRequest(
      { host: "127.0.0.1", port, ca, agent, method: req.method ?? "POST", path: req.path, headers },
      (res) => {
        const parts: Buffer[] = [];
        res.on("data", (d: Buffer) => parts.push(d));
        res.on("end", () => {
          const text = Buffer.concat(parts).toString("utf8");
          let message = text.slice(0, 300);
          let allowed: boolean | undefined;
          try {
            const json = JSON.parse(text) as {
              message?: string;
              response?: { allowed?: boolean; status?: { message?: string } };
            };
            message = json.message ?? json.response?.status?.message ?? message;
            allowed = json.response?.allowed;
          } catch {
            // not JSON: keep the text
          }
          finish(res.statusCode ?? 0, message, allowed);
        });
        res.on("error", (err) => finish(0, `response broke: ${err.message}`));
      },
    );
    const timer = setTimeout(() => {
      finish(0, `no answer within ${giveUpMs} ms`);
      r.destroy();
    }, giveUpMs);
    r.on("error", (err) => finish(0, `request failed: ${err.message}`));
    if (!chunked) {
      r.end(req.body);
      return;
    }
    let left = req.repeat ?? 0;
    const write = () => {
      while (left > 0) {
        left--;
        if (!r.write(req.body)) {
          r.once("drain", write);
          return;
        }
      }
      r.end();
    };
    write();
  });
}

/**
 * A slowloris client: sends `text` one byte every `everyMs`, then stalls with the connection open.
 * Resolves with the status line the server sent before it closed the connection (408 expected).
 */
export function slowClient(
  port: number,
  ca: string,
  what: string,
  text: string,
  everyMs: number,
  giveUpMs: number,
): Promise<Answer> {
  const started = performance.now();
  return new Promise((resolve) => {
    let received = "";
    let settled = false;
    let timer: NodeJS.Timeout | undefined;
    const socket = connect({ host: "127.0.0.1", port, ca });
    const finish = (message?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      clearTimeout(giveUp);
      socket.destroy();
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(received)?.[1] ?? 0);
      resolve({
        what,
        status,
        message: message ?? (received.split("\r\n")[0] || "closed without an answer"),
        ms: performance.now() - started,
      });
    };
    const giveUp = setTimeout(() => finish(`the server still held the connection after ${giveUpMs} ms`), giveUpMs);
    let sent = 0;
    const drip = () => {
      if (settled || sent >= text.length) return; // all sent: stall
      socket.write(text[sent++] as string);
      timer = setTimeout(drip, everyMs);
    };
    socket.once("secureConnect", drip);
    socket.setEncoding("utf8").on("data", (d: string) => {
      received += d;
    });
    socket.on("close", () => finish());
    socket.on("error", () => finish());
  });
}

/** A dry-run create of a valid WebApp through the API server (both webhooks run; nothing is stored). */
export function dryRunCreate(rest: RestClient, name: string): Promise<unknown> {
  return rest.request("POST", WEBAPPS_PATH, { query: { dryRun: "All" }, body: webApp(name) });
}

/** The webhook certificate Secret, decoded: the CAs of the bundle and the serving certificate. */
export async function readCerts(rest: RestClient): Promise<{ cas: X509Certificate[]; serving: X509Certificate; bundle: string }> {
  const secret = await rest.request<{ data: Record<string, string> }>("GET", TLS_SECRET_PATH);
  const bundle = secret.data["ca.crt"] ?? "";
  const cas = splitPem(Buffer.from(bundle, "base64").toString("utf8")).map((pem) => new X509Certificate(pem));
  return { cas, serving: new X509Certificate(Buffer.from(secret.data["tls.crt"] ?? "", "base64").toString("utf8")), bundle };
}

/** The fingerprints of the CAs in each webhook's caBundle of both configurations. */
export async function configuredCas(rest: RestClient): Promise<Set<string>[]> {
  const out: Set<string>[] = [];
  for (const path of CONFIG_PATHS) {
    const config = await rest.request<{ webhooks: { clientConfig: { caBundle?: string } }[] }>("GET", path);
    for (const w of config.webhooks) {
      const pems = splitPem(Buffer.from(w.clientConfig.caBundle ?? "", "base64").toString("utf8"));
      out.push(new Set(pems.map((pem) => new X509Certificate(pem).fingerprint256)));
    }
  }
  return out;
}

/** The CA of `cas` that signed `cert`, if any. */
export const signerOf = (cert: X509Certificate, cas: readonly X509Certificate[]) =>
  cas.find((ca) => cert.checkIssued(ca) && cert.verify(ca.publicKey));

/**
 * The shared HTTPS admission server (express on node's https), on every replica.
 *
 * Guarantees: TLS 1.2 or later only; it starts serving once a certificate is available and swaps
 * certificates in place (`setSecureContext`: new handshakes get the new one, open connections are
 * kept). Every bad request gets a 4xx with a JSON message naming the problem, and the server keeps
 * serving: a body that is not JSON (400), not `application/json` (415), too large (413), not an
 * AdmissionReview v1 (400), for an unknown path (404) or for a kind the webhook does not serve (400).
 * Responses echo the request uid.
 */
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import express from "express";
import type { Client, Logger, Metrics, Runnable } from "../core/index.ts";
import { admit } from "./admit.ts";
import type { CertSource } from "./certs/source.ts";
import type { WebhookRegistry } from "./registry.ts";
import { admissionReviewSchema, reviewResponse } from "./review.ts";

/** Settings of the webhook server. */
export interface WebhookServerOptions {
  registry: WebhookRegistry;
  certs: CertSource;
  address: { host: string; port: number };
  client: Client;
  metrics: Metrics;
  logger: Logger;
  /** Largest accepted body in bytes; default 6 MiB (an AdmissionReview carries the object and the old object). */
  bodyLimitBytes?: number;
}

/** See the module comment. */
export class WebhookServer implements Runnable {
  readonly name = "webhook-server";
  readonly needsLeaderElection = false;
  private readonly o: WebhookServerOptions;
  private readonly log: Logger;
  private server: Server | undefined;
  private listening = false;

  constructor(options: WebhookServerOptions) {
    this.o = options;
    this.log = options.logger.child({ component: "webhook-server" });
  }

  /** True once the server accepts connections with a certificate. */
  get serving(): boolean {
    return this.listening;
  }

  /** The bound port (useful with port 0). */
  get port(): number | undefined {
    return (this.server?.address() as AddressInfo | null)?.port;
  }

  /** The express app (exposed for tests of the routing without TLS). */
  app(): express.Express {
    const { registry, metrics, client } = this.o;
    const limit = this.o.bodyLimitBytes ?? 6 * 2 ** 20;
    const app = express();
    app.disable("x-powered-by");
    // No ETags (admission responses are never cached), and the body goes out as one string: with a
    // Buffer body node writes headers and body as two chunks (writev), which on TLS cost a quarter of
    // the server's CPU in profiles.
    app.disable("etag");
    const reply = (res: express.Response, code: number, body: unknown) =>
      res.status(code).set("content-type", "application/json; charset=utf-8").end(JSON.stringify(body));
    const fail = (res: express.Response, code: number, message: string) => reply(res, code, { code, message });
    // One handler instead of routes plus express.json(): the path is looked up in a Map, and the body
    // is read with a size limit and parsed once (body-parser's layers were most of the per-request
    // cost in profiles, next to TLS).
    app.use(async (req, res) => {
      if (req.method !== "POST") {
        fail(res, 405, `${req.method} ${req.path}: admission webhooks take POST requests`);
        return;
      }
      const entry = registry.get(req.path);
      if (!entry) {
        const known = registry.entries().map((e) => e.path);
        fail(res, 404, `no webhook at ${req.path}; served paths: ${known.join(", ") || "none"}`);
        return;
      }
      // Every request to a webhook path is counted, bad ones included (as controller-runtime does).
      const labels = { webhook: entry.path };
      const started = performance.now();
      metrics.webhookInFlight.inc(labels);
      res.on("finish", () => {
        metrics.webhookInFlight.dec(labels);
        metrics.webhookRequests.inc({ ...labels, code: String(res.statusCode) });
        metrics.webhookLatency.observe(labels, (performance.now() - started) / 1000);
      });
      const type = req.headers["content-type"] ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        req.resume();
        fail(res, 415, `Content-Type must be application/json, got ${type || "none"}`);
        return;
      }
      const body = await readBody(req, limit);
      if (body === undefined) {
        fail(res, 413, `request body is larger than the ${limit / 2 ** 20} MiB limit`);
        return;
      }
      let json: unknown;
      try {
        json = JSON.parse(body);
      } catch (err) {
        fail(res, 400, `request body is not valid JSON: ${(err as Error).message}`);
        return;
      }
      try {
        const parsed = admissionReviewSchema.safeParse(json);
        if (!parsed.success) {
          const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
          fail(res, 400, `not an AdmissionReview v1: ${problems}`);
          return;
        }
        const request = parsed.data.request;
        const { kind } = entry;
        if (request.kind.group !== kind.group || request.kind.kind !== kind.kind || request.kind.version !== kind.version) {
          const got = `${request.kind.group}/${request.kind.version}/${request.kind.kind}`;
          const want = `${kind.group}/${kind.version}/${kind.kind}`;
          reply(
            res,
            400,
            reviewResponse({
              uid: request.uid,
              allowed: false,
              status: { code: 400, message: `${entry.path} admits ${want}, not ${got}` },
            }),
          );
          return;
        }
        reply(res, 200, reviewResponse(await admit(entry, request, client)));
      } catch (err) {
        this.log.error({ err: err instanceof Error ? err.stack : String(err), webhook: entry.path }, "admission handler failed");
        fail(res, 500, `admission handler failed: ${err instanceof Error ? err.message : String(err)}`);
      }
    });
    return app;
  }

  async start(signal: AbortSignal): Promise<void> {
    const { certs, address } = this.o;
    let cert = certs.current();
    if (!cert) {
      this.log.info("waiting for a serving certificate");
      cert = await new Promise((resolve) => {
        certs.onChange(resolve);
        signal.addEventListener("abort", () => resolve(undefined), { once: true });
      });
      if (!cert) return;
    }
    const server = createServer({ cert: cert.cert, key: cert.key, minVersion: "TLSv1.2" }, this.app());
    this.server = server;
    certs.onChange((next) => {
      server.setSecureContext({ cert: next.cert, key: next.key, minVersion: "TLSv1.2" });
      this.log.info("serving a new certificate");
    });
    server.on("tlsClientError", (err) => this.log.debug({ err: err.message }, "TLS handshake failed"));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.host, () => resolve());
    });
    this.listening = true;
    this.log.info(
      { address: `${address.host}:${this.port}`, webhooks: this.o.registry.entries().map((e) => e.path) },
      "serving admission webhooks",
    );
    await new Promise<void>((resolve) => {
      if (signal.aborted) resolve();
      signal.addEventListener("abort", () => resolve(), { once: true });
    });
    this.listening = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }
}

/** Reads a request body as text; undefined (after draining the rest) when it exceeds `limit` bytes. */
async function readBody(req: NodeJS.ReadableStream, limit: number): Promise<string | undefined> {
  const chunks: Buffer[] = [];
  let size = 0;
  let tooLarge = false;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) tooLarge = true;
    // Past the limit the rest is read and dropped, so the client gets the 413 instead of a reset.
    if (!tooLarge) chunks.push(chunk as Buffer);
  }
  return tooLarge ? undefined : Buffer.concat(chunks).toString("utf8");
}

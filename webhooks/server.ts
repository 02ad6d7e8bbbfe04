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
  /** Largest accepted body; default 6 MB (an AdmissionReview carries the object and the old object). */
  bodyLimit?: string;
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
    const app = express();
    app.disable("x-powered-by");
    const fail = (res: express.Response, code: number, message: string) => res.status(code).json({ code, message });
    app.post("/{*path}", (req, res, next) => {
      const entry = registry.get(req.path);
      if (!entry) {
        const known = registry.entries().map((e) => e.path);
        fail(res, 404, `no webhook at ${req.path}; served paths: ${known.join(", ") || "none"}`);
        return;
      }
      if (!req.is("application/json")) {
        fail(res, 415, `Content-Type must be application/json, got ${req.headers["content-type"] ?? "none"}`);
        return;
      }
      next();
    });
    app.use(express.json({ limit: this.o.bodyLimit ?? "6mb", type: "application/json" }));
    app.post("/{*path}", async (req, res) => {
      const entry = registry.get(req.path);
      if (!entry) return;
      const labels = { webhook: entry.path };
      const started = performance.now();
      metrics.webhookInFlight.inc(labels);
      const send = (code: number, body: unknown) => {
        metrics.webhookRequests.inc({ ...labels, code: String(code) });
        res.status(code).json(body);
      };
      try {
        const parsed = admissionReviewSchema.safeParse(req.body);
        if (!parsed.success) {
          const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
          send(400, { code: 400, message: `not an AdmissionReview v1: ${problems}` });
          return;
        }
        const request = parsed.data.request;
        const { kind } = entry;
        if (request.kind.group !== kind.group || request.kind.kind !== kind.kind || request.kind.version !== kind.version) {
          const got = `${request.kind.group}/${request.kind.version}/${request.kind.kind}`;
          const want = `${kind.group}/${kind.version}/${kind.kind}`;
          send(
            400,
            reviewResponse({
              uid: request.uid,
              allowed: false,
              status: { code: 400, message: `${entry.path} admits ${want}, not ${got}` },
            }),
          );
          return;
        }
        const response = await admit(entry, request, client);
        send(200, reviewResponse(response));
      } catch (err) {
        this.log.error({ err: err instanceof Error ? err.stack : String(err), webhook: entry.path }, "admission handler failed");
        send(500, { code: 500, message: `admission handler failed: ${err instanceof Error ? err.message : String(err)}` });
      } finally {
        metrics.webhookInFlight.dec(labels);
        metrics.webhookLatency.observe(labels, (performance.now() - started) / 1000);
      }
    });
    app.use((req, res) =>
      fail(res, req.method === "POST" ? 404 : 405, `${req.method} ${req.path}: admission webhooks take POST requests`),
    );
    // Body parser errors: malformed JSON and oversized bodies.
    app.use(
      (
        err: { status?: number; type?: string; message?: string },
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        const code = err.status && err.status >= 400 && err.status < 500 ? err.status : 500;
        const message =
          err.type === "entity.too.large"
            ? `request body is larger than the ${this.o.bodyLimit ?? "6mb"} limit`
            : err.type === "entity.parse.failed"
              ? `request body is not valid JSON: ${err.message}`
              : (err.message ?? "bad request");
        fail(res, code, message);
      },
    );
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

/**
 * The shared HTTPS admission server (node's https), on every replica.
 *
 * Guarantees: TLS 1.2 or later only; it starts serving once a certificate is available and swaps
 * certificates in place (`setSecureContext`: new handshakes get the new one, open connections are
 * kept). Every bad request gets a 4xx with a JSON message naming the problem, and the server keeps
 * serving: a body that is not JSON (400), not `application/json` (415), too large (413), not an
 * AdmissionReview v1 (400), for an unknown path (404) or for a kind the webhook does not serve (400).
 * Responses echo the request uid. A slow or stalled client cannot hold a connection: the TLS
 * handshake must finish within 10 s, the headers arrive within `headersTimeoutMs` and the whole
 * request within `requestTimeoutMs` (node answers 408 and closes), checked every second. The API
 * server gives up on a webhook after its timeoutSeconds (at most 30 s), so nothing longer is useful.
 * A body over the limit is read and dropped as it arrives (memory stays bounded), then answered 413.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import type { Duplex } from "node:stream";
import type { ManagerConfig } from "../core/manager/config.ts";
import type { PluginModule } from "../core/manager/plugin-modules.ts";
import { Metrics } from "../core/metrics/metrics.ts";
import type { Client, Logger, Plugin, RestClient, Runnable } from "../core/runtime.ts";
import { untilAborted } from "../core/sleep.ts";
import { admit } from "./admit.ts";
import type { CertSource, ServingCert } from "./certs/source.ts";
import type { WebhookEntry, WebhookRegistry } from "./registry.ts";
import { admissionReviewSchema, reviewResponse } from "./review.ts";
import { AdmissionThread, threadPlugins } from "./thread.ts";

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
  /** Time a client has to send the request headers; default 10 s. */
  headersTimeoutMs?: number;
  /** Time a client has to send the whole request; default 30 s (the API server's longest webhook timeout). */
  requestTimeoutMs?: number;
  /**
   * Serve on the admission thread (thread.ts) when every running plugin can be loaded there; the
   * server then runs in the thread and this one only relays certificates, metrics and readiness.
   */
  thread?: {
    config: ManagerConfig;
    rest: RestClient;
    /** The plugins whose setup completed (read at start). */
    plugins: () => readonly Plugin[];
  };
}

/** How long a TLS handshake may take before the socket is closed. */
const HANDSHAKE_TIMEOUT_MS = 10_000;
/** Defaults of {@link WebhookServerOptions}. */
export const WEBHOOK_SERVER_DEFAULTS = {
  bodyLimitBytes: 6 * 2 ** 20,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
} as const;

/** See the module comment. */
export class WebhookServer implements Runnable {
  readonly name = "webhook-server";
  readonly needsLeaderElection = false;
  private readonly o: WebhookServerOptions;
  private readonly log: Logger;
  private server: Server | undefined;
  private thread: AdmissionThread | undefined;
  private listening = false;

  constructor(options: WebhookServerOptions) {
    this.o = options;
    this.log = options.logger.child({ component: "webhook-server" });
  }

  /** True once the server (here or on the admission thread) accepts connections with a certificate. */
  get serving(): boolean {
    return this.thread ? this.thread.port !== undefined : this.listening;
  }

  /** The bound port (useful with port 0). */
  get port(): number | undefined {
    return this.thread ? this.thread.port : (this.server?.address() as AddressInfo | null)?.port;
  }

  /**
   * The request handler. Plain node `http` rather than express: the server answers one kind of
   * request (a POST of JSON to a path looked up in a Map) and express's per-request layers (router,
   * prototype swaps, header helpers) cost a third of the server's CPU per admission under load
   * (bench/README.md). The manager's health and metrics endpoints stay on express.
   */
  handler(): (req: IncomingMessage, res: ServerResponse) => void {
    const { registry, metrics, client } = this.o;
    const limit = this.o.bodyLimitBytes ?? WEBHOOK_SERVER_DEFAULTS.bodyLimitBytes;
    // The body goes out as one string with its length: with a Buffer, or headers set one by one,
    // node writes headers and body as two chunks (writev), which costs CPU on TLS. The write waits
    // for the check phase (setImmediate): written from the promise chain that runs inside the TLS
    // socket's read callback, each response costs more CPU (bench/README.md); the delay is one turn.
    const reply = (res: ServerResponse, code: number, body: unknown, close = false) => {
      const text = JSON.stringify(body);
      setImmediate(() => {
        if (res.destroyed) return;
        res.writeHead(code, {
          "content-type": "application/json; charset=utf-8",
          "content-length": Buffer.byteLength(text),
          ...(close ? { connection: "close" } : {}),
        });
        res.end(text);
      });
    };
    const fail = (res: ServerResponse, code: number, message: string, close = false) =>
      reply(res, code, { code, message }, close);
    return (req, res) => {
      const url = req.url ?? "/";
      const q = url.indexOf("?");
      const path = q < 0 ? url : url.slice(0, q);
      if (req.method !== "POST") {
        req.resume();
        fail(res, 405, `${req.method} ${path}: admission webhooks take POST requests`);
        return;
      }
      const entry = registry.get(path);
      if (!entry) {
        req.resume();
        const known = registry.entries().map((e) => e.path);
        fail(res, 404, `no webhook at ${path}; served paths: ${known.join(", ") || "none"}`);
        return;
      }
      // Every request to a webhook path is counted, bad ones included (as controller-runtime does);
      // one the client gave up on (closed before the answer) is counted with code "aborted".
      const labels = { webhook: entry.path };
      const started = performance.now();
      metrics.webhookInFlight.inc(labels);
      res.once("close", () => {
        metrics.webhookInFlight.dec(labels);
        metrics.webhookRequests.inc({ ...labels, code: res.writableFinished ? String(res.statusCode) : "aborted" });
        metrics.webhookLatency.observe(labels, (performance.now() - started) / 1000);
      });
      const type = req.headers["content-type"] ?? "";
      if (!/^application\/json\s*(;|$)/i.test(type)) {
        req.resume();
        fail(res, 415, `Content-Type must be application/json, got ${type || "none"}`);
        return;
      }
      readBody(req, limit, (body) => {
        if (body === undefined) {
          fail(res, 413, `request body is larger than the ${limit / 2 ** 20} MiB limit`, true);
          return;
        }
        // Any throw, in the handler or while serializing its answer, becomes a 500 (never an
        // unhandled rejection, which would end the process).
        this.review(entry, body, client)
          .then(([code, answer]) => reply(res, code, answer))
          .catch((err: unknown) => {
            this.log.error(
              { err: err instanceof Error ? err.stack : String(err), webhook: entry.path },
              "admission handler failed",
            );
            fail(res, 500, `admission handler failed: ${err instanceof Error ? err.message : String(err)}`);
          });
      });
    };
  }

  /** The answer to one request body: the status code and the body to send. */
  private async review(entry: WebhookEntry, body: string, client: Client): Promise<[number, unknown]> {
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (err) {
      return [400, { code: 400, message: `request body is not valid JSON: ${(err as Error).message}` }];
    }
    const parsed = admissionReviewSchema.safeParse(json);
    if (!parsed.success) {
      const problems = parsed.error.issues.map((i) => `${i.path.join(".") || "body"}: ${i.message}`).join("; ");
      return [400, { code: 400, message: `not an AdmissionReview v1: ${problems}` }];
    }
    const request = parsed.data.request;
    const { kind } = entry;
    if (request.kind.group !== kind.group || request.kind.kind !== kind.kind || request.kind.version !== kind.version) {
      const got = `${request.kind.group}/${request.kind.version}/${request.kind.kind}`;
      const want = `${kind.group}/${kind.version}/${kind.kind}`;
      return [
        400,
        reviewResponse({
          uid: request.uid,
          allowed: false,
          status: { code: 400, message: `${entry.path} admits ${want}, not ${got}` },
        }),
      ];
    }
    // Only a defaulting webhook's CREATE adds finalizers.
    const finalizers =
      entry.type === "mutating" && request.operation === "CREATE" ? this.o.registry.finalizersOf(entry.kind) : [];
    return [200, reviewResponse(await admit(entry, request, client, finalizers))];
  }

  /** Serves until `signal` aborts; `onServing` hears the port once it serves. */
  async start(signal: AbortSignal, onServing?: (port: number) => void): Promise<void> {
    const { certs, address } = this.o;
    let cert = certs.current();
    if (!cert) {
      this.log.info("waiting for a serving certificate");
      cert = await Promise.race([
        new Promise<ServingCert>((resolve) => certs.onChange(resolve)),
        untilAborted(signal).then(() => undefined),
      ]);
      if (!cert) return;
    }
    const thread = this.o.thread;
    if (thread?.config.webhookThread) {
      const plan = threadPlugins(thread.plugins());
      if ("modules" in plan) return this.startThread(thread, plan, cert, signal);
      this.log.info({ reason: plan.reason }, "serving admission on the main thread");
    }
    const headersTimeout = this.o.headersTimeoutMs ?? WEBHOOK_SERVER_DEFAULTS.headersTimeoutMs;
    const server = createServer(
      {
        cert: cert.cert,
        key: cert.key,
        minVersion: "TLSv1.2",
        handshakeTimeout: HANDSHAKE_TIMEOUT_MS,
        headersTimeout,
        requestTimeout: Math.max(headersTimeout, this.o.requestTimeoutMs ?? WEBHOOK_SERVER_DEFAULTS.requestTimeoutMs),
        // node checks both timeouts on this interval (default 30 s, which would triple the bound).
        connectionsCheckingInterval: 1_000,
      },
      this.handler(),
    );
    this.server = server;
    certs.onChange((next) => {
      server.setSecureContext({ cert: next.cert, key: next.key, minVersion: "TLSv1.2" });
      this.log.info("serving a new certificate");
    });
    server.on("tlsClientError", (err) => this.log.debug({ err: err.message }, "TLS handshake failed"));
    server.on("clientError", (err: NodeJS.ErrnoException, socket) =>
      clientError(err, socket, headersTimeout, server.requestTimeout),
    );
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(address.port, address.host, () => resolve());
    });
    this.listening = true;
    onServing?.(this.port ?? address.port);
    this.log.info(
      { address: `${address.host}:${this.port}`, webhooks: this.o.registry.entries().map((e) => e.path) },
      "serving admission webhooks",
    );
    await untilAborted(signal);
    this.listening = false;
    await new Promise<void>((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
  }

  /** Runs the server on the admission thread (thread.ts) until `signal` aborts. */
  private async startThread(
    options: NonNullable<WebhookServerOptions["thread"]>,
    plan: { modules: PluginModule[]; names: string[] },
    cert: ServingCert,
    signal: AbortSignal,
  ): Promise<void> {
    const { certs, metrics } = this.o;
    const thread = new AdmissionThread(
      {
        config: options.config,
        rest: options.rest.settings(),
        modules: plan.modules,
        plugins: plan.names,
        address: this.o.address,
        limits: {
          ...(this.o.bodyLimitBytes !== undefined ? { bodyLimitBytes: this.o.bodyLimitBytes } : {}),
          ...(this.o.headersTimeoutMs !== undefined ? { headersTimeoutMs: this.o.headersTimeoutMs } : {}),
          ...(this.o.requestTimeoutMs !== undefined ? { requestTimeoutMs: this.o.requestTimeoutMs } : {}),
        },
        cert: { cert: cert.cert, key: cert.key },
      },
      this.log,
    );
    // A runnable starts once: the thread (which restarts itself) is this server's for good.
    this.thread = thread;
    metrics.delegate(Metrics.WEBHOOK_METRICS, () => thread.metricsText());
    certs.onChange((next) => thread.setCert({ cert: next.cert, key: next.key }));
    this.log.info({ plugins: plan.names }, "serving admission on its own thread");
    await thread.run(signal);
  }
}

/**
 * Answers a request node's HTTP parser gave up on: a timeout (408) or a malformed request (400, or
 * 431 for headers that are too large), as JSON naming the problem. Node's own answer is written
 * and the socket destroyed at once, which on TLS can drop the answer; here the socket is destroyed
 * once the answer is flushed.
 */
function clientError(err: NodeJS.ErrnoException, socket: Duplex, headersTimeoutMs: number, requestTimeoutMs: number): void {
  if (err.code === "ECONNRESET" || !socket.writable) {
    socket.destroy();
    return;
  }
  const [code, reason, message] =
    err.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [
          408,
          "Request Timeout",
          `the request was not received in time: headers are allowed ${headersTimeoutMs / 1000} s, the whole request ${requestTimeoutMs / 1000} s`,
        ]
      : err.code === "HPE_HEADER_OVERFLOW"
        ? [431, "Request Header Fields Too Large", "the request headers are larger than the server accepts (16 KiB)"]
        : [400, "Bad Request", `malformed HTTP request: ${err.code ?? err.message}`];
  const body = JSON.stringify({ code, message });
  socket.end(
    `HTTP/1.1 ${code} ${reason}\r\nConnection: close\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    () => socket.destroy(),
  );
  // A client that never reads must not hold the socket either.
  setTimeout(() => socket.destroy(), 5_000).unref();
}

/**
 * How long a connection whose request was too large stays open after its 413, unread, before it is
 * closed: the time the client has to read the answer before the close resets the connection (Go's
 * net/http waits 500 ms for the same reason).
 */
const LINGER_MS = 500;

/**
 * Reads a request body as text; `undefined` as soon as it exceeds `limit` bytes, or at once when
 * its Content-Length says it will. The rest is not read: what was kept is released, the socket
 * stops reading (TCP holds the client back), the answer goes out with `Connection: close`, and the
 * socket is ended and then closed LINGER_MS later, so the client reads the answer before the close
 * resets it. Draining the rest instead, as node does, cost a storm of 6 MiB bodies ~100 MiB of RSS
 * that glibc kept after it (every chunk is a Buffer freed only at the next GC) and the CPU to
 * decrypt what is thrown away. A request that breaks or is aborted mid-body gets no answer (its
 * socket is gone); the response's `close` event still settles the metrics.
 */
function readBody(req: IncomingMessage, limit: number, done: (body: string | undefined) => void): void {
  const refuse = () => {
    const socket = req.socket;
    socket.pause();
    // ...and stays paused: node resumes it to drain the request (IncomingMessage's read, and its
    // _dump once the answer is written).
    socket.resume = () => socket;
    // node ends a `Connection: close` response's socket with destroySoon(), which closes it as soon
    // as the answer is written: with unread bytes, that close is a reset the answer may not outrun.
    socket.destroySoon = () => {
      socket.end();
      setTimeout(() => socket.destroy(), LINGER_MS).unref();
    };
    done(undefined);
  };
  if (Number(req.headers["content-length"]) > limit) {
    refuse();
    return;
  }
  // Events rather than `for await`: the async iterator cost more per request than the admission.
  const chunks: Buffer[] = [];
  let size = 0;
  const onData = (chunk: Buffer) => {
    size += chunk.length;
    if (size <= limit) {
      chunks.push(chunk);
      return;
    }
    chunks.length = 0;
    req.off("data", onData);
    req.off("end", onEnd);
    refuse();
  };
  const onEnd = () => done(Buffer.concat(chunks, size).toString("utf8"));
  req.on("data", onData);
  req.once("end", onEnd);
  req.once("error", () => req.destroy());
}

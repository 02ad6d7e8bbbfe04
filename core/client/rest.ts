/**
 * A small REST client for the Kubernetes API: JSON requests, paged lists and watch streams over one
 * pooled HTTP/1.1 connection set, with client-go's request metrics.
 *
 * Why not client-node's generated APIs or KubernetesObjectApi: they build a new undici dispatcher
 * (and so new TLS connections) per request, have no status-subresource calls for arbitrary kinds, and
 * offer no hook to count requests by verb and code. kubeplug still uses client-node for what it does
 * well: loading kubeconfig/in-cluster config and authentication (token files, exec plugins, client
 * certificates), which `applySecurityAuthentication` turns into headers and a TLS dispatcher.
 */
// Files, not the package index: the index also loads the generated API (slim-client-node.ts).
import type { KubeConfig } from "@kubernetes/client-node/dist/config.js";
import { HttpMethod, RequestContext } from "@kubernetes/client-node/dist/gen/http/http.js";
import { Agent, type Dispatcher } from "undici";

/** A Kubernetes `Status` object, as returned with errors. */
export interface Status {
  kind?: string;
  status?: string;
  message?: string;
  reason?: string;
  code?: number;
  details?: { name?: string; kind?: string; causes?: { field?: string; message?: string; reason?: string }[] };
}

/** An error answered by the API server (or a transport failure, code 0). */
export class ApiError extends Error {
  override name = "ApiError";
  readonly code: number;
  readonly reason: string;
  readonly status: Status | undefined;
  readonly method: string;
  readonly path: string;
  constructor(method: string, path: string, code: number, status: Status | undefined, fallback: string) {
    super(
      `${method} ${path}: ${code || "no response"} ${status?.reason ?? ""} ${status?.message ?? fallback}`
        .replace(/\s+/g, " ")
        .trim(),
    );
    this.code = code;
    this.reason = status?.reason ?? "";
    this.status = status;
    this.method = method;
    this.path = path;
  }
}

/** True for a 404 NotFound. */
export const isNotFound = (err: unknown): boolean => err instanceof ApiError && err.code === 404;
/** True for a 409 Conflict (stale resourceVersion or AlreadyExists). */
export const isConflict = (err: unknown): boolean => err instanceof ApiError && err.code === 409;
/** True for 409 AlreadyExists. */
export const isAlreadyExists = (err: unknown): boolean => err instanceof ApiError && err.reason === "AlreadyExists";
/** True for 410 Gone (expired resourceVersion). */
export const isGone = (err: unknown): boolean => err instanceof ApiError && err.code === 410;

/** Receives one observation per request, for `rest_client_requests_total` and latency. */
export interface RestMetrics {
  observe(method: string, code: string, host: string, seconds: number): void;
}

/** Patch flavours the API server accepts. */
export const PatchType = {
  merge: "application/merge-patch+json",
  json: "application/json-patch+json",
  strategic: "application/strategic-merge-patch+json",
  apply: "application/apply-patch+yaml",
} as const;
export type PatchType = (typeof PatchType)[keyof typeof PatchType];

/** Options of one request. */
export interface RequestOptions {
  query?: Record<string, string | number | boolean | undefined>;
  body?: unknown;
  contentType?: string;
  signal?: AbortSignal;
  /** The Accept header; default application/json (metadata-only reads ask for PartialObjectMetadata). */
  accept?: string;
}

/** One event of a watch stream. */
export interface WatchEvent {
  type: "ADDED" | "MODIFIED" | "DELETED" | "BOOKMARK" | "ERROR";
  object: Record<string, unknown>;
}

function queryString(query: RequestOptions["query"]): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== "") params.set(k, String(v));
  const s = params.toString();
  return s ? `?${s}` : "";
}

const HEADER_REFRESH_MS = 60_000;

/** See the module comment. Create with {@link RestClient.create}. */
export class RestClient {
  readonly server: string;
  private readonly origin: string;
  /** host:port, the `host` label of the request metrics. */
  private readonly host: string;
  private readonly basePath: string;
  private readonly dispatcher: Dispatcher;
  private readonly kubeConfig: KubeConfig;
  private readonly metrics: RestMetrics | undefined;
  private readonly userAgent: string;
  private headers: Record<string, string>;
  /** When the headers were last fetched, by the monotonic clock (a wall-clock step must not stall the refresh). */
  private headersAt: number;

  private constructor(
    kc: KubeConfig,
    dispatcher: Dispatcher,
    headers: Record<string, string>,
    metrics?: RestMetrics,
    userAgent?: string,
  ) {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster: set a current-context or pass --kubeconfig");
    this.server = cluster.server.replace(/\/+$/, "");
    const url = new URL(this.server);
    this.origin = url.origin;
    this.host = url.host;
    this.basePath = url.pathname === "/" ? "" : url.pathname;
    this.kubeConfig = kc;
    this.dispatcher = dispatcher;
    this.headers = headers;
    this.headersAt = performance.now();
    this.metrics = metrics;
    this.userAgent = userAgent ?? "kubeplug";
  }

  /** Builds a client from a loaded KubeConfig (its current context). */
  static async create(kc: KubeConfig, options: { metrics?: RestMetrics; userAgent?: string } = {}): Promise<RestClient> {
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error("the kubeconfig has no current cluster: set a current-context or pass --kubeconfig");
    const ctx = new RequestContext(cluster.server, HttpMethod.GET);
    await kc.applySecurityAuthentication(ctx);
    // One dispatcher for the process: connections (and TLS sessions) are pooled and reused.
    const dispatcher = ctx.getDispatcher() ?? new Agent();
    return new RestClient(kc, dispatcher, ctx.getHeaders(), options.metrics, options.userAgent);
  }

  /** What another thread needs to build the same client: the kubeconfig (as JSON) and user agent. */
  settings(): { kubeConfig: string; userAgent: string } {
    return { kubeConfig: this.kubeConfig.exportConfig(), userAgent: this.userAgent };
  }

  /** Refreshes auth headers now and then: tokens from files and exec plugins rotate. */
  private async authHeaders(): Promise<Record<string, string>> {
    if (performance.now() - this.headersAt > HEADER_REFRESH_MS) {
      const ctx = new RequestContext(this.server, HttpMethod.GET);
      await this.kubeConfig.applySecurityAuthentication(ctx);
      this.headers = ctx.getHeaders();
      this.headersAt = performance.now();
    }
    return this.headers;
  }

  private async send(
    method: string,
    path: string,
    options: RequestOptions,
    bodyTimeout?: number,
  ): Promise<Dispatcher.ResponseData> {
    const headers: Record<string, string> = {
      ...(await this.authHeaders()),
      accept: options.accept ?? "application/json",
      "user-agent": this.userAgent,
    };
    let body: string | undefined;
    if (options.body !== undefined) {
      body = typeof options.body === "string" ? options.body : JSON.stringify(options.body);
      headers["content-type"] = options.contentType ?? "application/json";
    }
    const fullPath = `${this.basePath}${path}${queryString(options.query)}`;
    try {
      // HTTP/1.1 (undici 8 negotiates HTTP/2 by default): aborting an HTTP/2 stream in the tick it
      // was dispatched leaves it without an error listener, and closing the client later throws an
      // uncaught ClientDestroyedError (seen when a cache stops right after it synced).
      const request: Dispatcher.RequestOptions & { allowH2: boolean } = {
        origin: this.origin,
        path: fullPath,
        method: method as Dispatcher.HttpMethod,
        headers,
        body,
        signal: options.signal,
        allowH2: false,
        // Plain requests (lists included) must not hang on a silent connection for undici's default
        // 300 s; watches pass bodyTimeout 0 and rely on the informer's own stall timer.
        headersTimeout: 30_000,
        bodyTimeout: bodyTimeout ?? 60_000,
      };
      return await this.dispatcher.request(request);
    } catch (err) {
      if (options.signal?.aborted) throw err;
      this.metrics?.observe(method, "<error>", this.host, 0);
      throw new ApiError(method, path, 0, undefined, `cannot reach ${this.server}: ${(err as Error).message}`);
    }
  }

  /** Sends a request and returns the decoded JSON body; throws {@link ApiError} for status >= 400. */
  async request<T = unknown>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const text = await this.requestText(method, path, options);
    return (text ? JSON.parse(text) : undefined) as T;
  }

  /** Like {@link request}, for answers that are not JSON (`/metrics`, pod logs): the body as text. */
  async requestText(method: string, path: string, options: RequestOptions = {}): Promise<string> {
    const started = performance.now();
    const res = await this.send(method, path, options);
    const text = await res.body.text();
    this.metrics?.observe(method, String(res.statusCode), this.host, (performance.now() - started) / 1000);
    if (res.statusCode >= 400) throw new ApiError(method, path, res.statusCode, parseStatus(text), text.slice(0, 200));
    return text;
  }

  /**
   * Opens a watch and yields its events until the server ends it, `signal` aborts, or the stream
   * breaks (then it throws). A non-200 answer throws {@link ApiError} (410 for an expired version).
   */
  async *watch(
    path: string,
    query: RequestOptions["query"],
    signal: AbortSignal,
    options: { accept?: string } = {},
  ): AsyncGenerator<WatchEvent> {
    const started = performance.now();
    // bodyTimeout 0: a watch may be quiet for minutes; the informer runs its own stall timer.
    const res = await this.send("GET", path, { query: { ...query, watch: true }, signal, ...options }, 0);
    this.metrics?.observe("GET", String(res.statusCode), this.host, (performance.now() - started) / 1000);
    if (res.statusCode !== 200) {
      const text = await res.body.text();
      throw new ApiError("GET", path, res.statusCode, parseStatus(text), text.slice(0, 200));
    }
    let buffered = "";
    const decoder = new TextDecoder();
    try {
      for await (const chunk of res.body) {
        buffered += decoder.decode(chunk as Uint8Array, { stream: true });
        let newline = buffered.indexOf("\n");
        while (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          if (line.trim()) yield JSON.parse(line) as WatchEvent;
          newline = buffered.indexOf("\n");
        }
      }
    } finally {
      res.body.destroy();
    }
  }

  /** Closes pooled connections. */
  async close(): Promise<void> {
    await this.dispatcher.close();
  }
}

function parseStatus(text: string): Status | undefined {
  try {
    const parsed = JSON.parse(text) as Status;
    return parsed && typeof parsed === "object" ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One list+watch of one kind (in one namespace or all), feeding a {@link Store} and event handlers.
 *
 * Why not client-node's informer: on any error but 410 it stops for good, its initial list is O(n²),
 * it does not request bookmarks, and a silently stalled watch goes unnoticed (FINDINGS.md,
 * kubernetes-client/javascript #1933 #1961 #596). This one follows client-go's reflector instead:
 *
 * Guarantees:
 * - Lists are paged (`limit`/`continue`); the store is replaced in linear time.
 * - The watch resumes from the last resourceVersion seen (event or bookmark) after a disconnect,
 *   with exponential backoff and jitter; on 410 Gone it relists and emits exactly the differences.
 * - A silent watch is replaced within 90 s: the server is asked to end each watch after a random
 *   60-75 s (`timeoutSeconds`), and a client timer aborts and restarts a watch that brings nothing
 *   (no event, bookmark or end) for 5 s longer than that, so within 80 s. The new watch resumes
 *   from the last resourceVersion: no relist unless the server answers 410.
 *
 * Why these timers: client-go asks for 5-10 minutes and relies on HTTP/2 pings to find dead
 * connections; kubeplug speaks HTTP/1.1 (see rest.ts), which has no ping, and the API server sends a
 * bookmark only shortly before a watch's timeout (1.20 sent none in 200 s on an idle watch), so
 * neither detects a connection that went silent (a NAT or load balancer dropping it). The server's
 * own timeout is then the only signal; 60-75 s bounds the stall at 90 s for the price of about one
 * watch request per informer per minute, which the API server serves from its watch cache.
 * - Handlers run in event order on the informer's loop; a throwing handler is logged, never fatal.
 *
 * Caveats: handlers must be quick (enqueue work, do not await I/O).
 */

import { ApiError, isGone, type RestClient, type WatchEvent } from "../client/rest.ts";
import type { Kind } from "../kinds.ts";
import { apiVersionOf, collectionPath } from "../kinds.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { type KubeObject, objectKey } from "../object.ts";
import { sleep } from "../sleep.ts";
import { Store, toStored } from "./store.ts";

/**
 * How long past its server-side timeout a watch may stay silent before the client gives up on it.
 * Short, because a false alarm (a server late to end the watch) costs one new watch from the same
 * resourceVersion, no relist; with the longest timeout (75 s) a stall is noticed within 80 s, which
 * leaves the 90 s bound 10 s for the new watch and what it delivers on a loaded machine (at 15 s it
 * was noticed at 90 s and delivered at 87.9 s in the fault suite's scenario 4).
 */
const STALL_MARGIN_SECONDS = 5;
/**
 * Accept headers of metadata-only lists and watches (client-go's metadata client sends the same),
 * with plain JSON after them for a server that cannot answer so (whole objects are cached then).
 */
const METADATA_LIST = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1,application/json";
const METADATA_OBJECT = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json";

/** Callbacks for changes; any may be omitted. */
export interface EventHandler<T extends KubeObject = KubeObject> {
  onAdd?(obj: T): void;
  onUpdate?(old: T, obj: T): void;
  onDelete?(obj: T): void;
}

/** Tuning; the defaults are client-go's. Tests shorten them. */
export interface InformerOptions<T extends KubeObject = KubeObject> {
  namespace?: string;
  labelSelector?: string;
  fieldSelector?: string;
  /**
   * Lists and watches only metadata (PartialObjectMetadata, as client-go's metadata informers do):
   * the API server sends no spec, status or data, so neither the wire nor the cache carries them.
   */
  metadataOnly?: boolean;
  /** Page size of lists; default 500. */
  pageSize?: number;
  /**
   * Range of the server-side watch timeout in seconds; default [60, 75]. A watch silent for 15 s
   * past its timeout is presumed dead (see the module comment).
   */
  watchTimeoutSeconds?: readonly [number, number];
  /**
   * Applied to every object before it is stored (a plugin's cache scope): keep only what readers
   * need. It gets a fresh object it may change or replace; it must keep the metadata.
   */
  transform?: (obj: T) => T;
  /** Told of each stall detected and each relist after 410 (for metrics). */
  onStall?: (kind: string) => void;
  onRelist?: (kind: string) => void;
  /**
   * Backoff after a failed watch or list: initial and maximum ms, each delay with full jitter (up
   * to twice the step); default 500 ms .. 1 s. client-go goes to 30 s, which spares an API server
   * thousands of clients; an operator has a handful of informers per replica, and a long backoff
   * would leave it deaf for up to a minute after the API server is back.
   */
  backoffMs?: readonly [number, number];
  logger?: Logger;
}

/** See the module comment. */
export class Informer<T extends KubeObject = KubeObject> {
  readonly store = new Store<T>();
  readonly kind: Kind<T>;
  /** The namespace watched; undefined for all namespaces (or a cluster-scoped kind). */
  readonly namespace: string | undefined;
  private readonly rest: RestClient;
  private readonly options: InformerOptions<T>;
  private readonly handlers = new Set<EventHandler<T>>();
  private readonly log: Logger;
  private resourceVersion: string | undefined;
  private synced = false;
  private readonly syncWaiters: (() => void)[] = [];
  /** Counters for tests and diagnostics. */
  readonly stats = { lists: 0, watches: 0, relists: 0, stalls: 0 };

  constructor(rest: RestClient, kind: Kind<T>, options: InformerOptions<NoInfer<T>> = {}) {
    this.rest = rest;
    this.kind = kind;
    this.options = options;
    this.namespace = options.namespace;
    this.log = (options.logger ?? silentLogger()).child({
      informer: kind.kind,
      ...(options.namespace ? { namespace: options.namespace } : {}),
    });
  }

  /** Adds a handler. After sync it first receives an add for every stored object, as client-go does. */
  addHandler(handler: EventHandler<T>): () => void {
    this.handlers.add(handler);
    if (this.synced) for (const obj of this.store.list()) this.call(handler, "onAdd", obj);
    return () => this.handlers.delete(handler);
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Resolves once the first list is stored (or when `signal` aborts). */
  waitForSync(signal?: AbortSignal): Promise<void> {
    if (this.synced) return Promise.resolve();
    if (signal?.aborted) return Promise.resolve();
    return new Promise((resolve) => {
      this.syncWaiters.push(resolve);
      signal?.addEventListener("abort", () => resolve(), { once: true });
    });
  }

  private call(handler: EventHandler<T>, method: "onAdd" | "onDelete", obj: T): void;
  private call(handler: EventHandler<T>, method: "onUpdate", old: T, obj: T): void;
  private call(handler: EventHandler<T>, method: keyof EventHandler<T>, a: T, b?: T): void {
    try {
      if (method === "onUpdate") handler.onUpdate?.(a, b as T);
      else handler[method]?.(a);
    } catch (err) {
      this.log.error({ err }, "event handler threw");
    }
  }

  private emit(method: "onAdd" | "onDelete", obj: T): void;
  private emit(method: "onUpdate", old: T, obj: T): void;
  private emit(method: keyof EventHandler<T>, a: T, b?: T): void {
    for (const handler of this.handlers) {
      if (method === "onUpdate") this.call(handler, method, a, b as T);
      else this.call(handler, method, a);
    }
  }

  /** Runs until `signal` aborts. */
  async start(signal: AbortSignal): Promise<void> {
    const [initialBackoff, maxBackoff] = this.options.backoffMs ?? [500, 1_000];
    let backoff = initialBackoff;
    while (!signal.aborted) {
      try {
        if (this.resourceVersion === undefined) await this.list(signal);
        const watchStarted = performance.now();
        const delivered = await this.watch(signal);
        if (delivered) {
          backoff = initialBackoff;
        } else if (performance.now() - watchStarted < 1_000 && !signal.aborted) {
          // A watch that ends at once with nothing in it (a flaky proxy, an overloaded server) must
          // not turn into a reconnect loop: back off as client-go does after a "very short watch".
          await sleep(backoff * (1 + Math.random()), signal);
          backoff = Math.min(backoff * 2, maxBackoff);
        }
      } catch (err) {
        if (signal.aborted) break;
        if (isGone(err)) {
          this.log.info("resourceVersion expired (410 Gone): relisting");
          this.resourceVersion = undefined;
          this.stats.relists++;
          this.options.onRelist?.(this.kind.kind);
          continue;
        }
        // Full jitter on top of the exponential step, as client-go's wait.Jitter(d, 1.0).
        const delay = backoff * (1 + Math.random());
        this.log.warn({ err: String(err), retryInMs: Math.round(delay) }, "list/watch failed; retrying");
        await sleep(delay, signal);
        backoff = Math.min(backoff * 2, maxBackoff);
      }
    }
  }

  private async list(signal: AbortSignal): Promise<void> {
    const path = collectionPath(this.kind, this.options.namespace);
    const items: T[] = [];
    let continueToken: string | undefined;
    let resourceVersion = "";
    let paged = true;
    for (;;) {
      let page: { metadata?: { resourceVersion?: string; continue?: string }; items?: T[] };
      try {
        page = await this.rest.request("GET", path, {
          signal,
          ...(this.options.metadataOnly ? { accept: METADATA_LIST } : {}),
          query: {
            labelSelector: this.options.labelSelector,
            fieldSelector: this.options.fieldSelector,
            ...(paged ? { limit: this.options.pageSize ?? 500, continue: continueToken } : {}),
          },
        });
      } catch (err) {
        // An expired continue token: start over with one unpaged list (client-go falls back too).
        if (isGone(err) && continueToken) {
          items.length = 0;
          continueToken = undefined;
          paged = false;
          continue;
        }
        throw err;
      }
      this.stats.lists++;
      for (const item of page.items ?? []) {
        // Items of a list carry no apiVersion/kind; fill them in so every cached object is whole.
        item.apiVersion ??= apiVersionOf(this.kind);
        item.kind ??= this.kind.kind;
        items.push(this.prepare(item));
      }
      resourceVersion = page.metadata?.resourceVersion ?? resourceVersion;
      continueToken = page.metadata?.continue || undefined;
      if (!continueToken) break;
    }
    const diff = this.store.replace(items);
    this.resourceVersion = resourceVersion;
    for (const obj of diff.added) this.emit("onAdd", obj);
    for (const { old, obj } of diff.updated) this.emit("onUpdate", old, obj);
    for (const obj of diff.deleted) this.emit("onDelete", obj);
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
    this.log.debug({ count: items.length, resourceVersion }, "listed");
  }

  /** One watch; returns whether it delivered anything. Throws on errors (ApiError 410 included). */
  private async watch(parent: AbortSignal): Promise<boolean> {
    const [min, max] = this.options.watchTimeoutSeconds ?? [60, 75];
    const timeoutSeconds = Math.round(min + Math.random() * (max - min));
    const abort = new AbortController();
    const onParentAbort = () => abort.abort();
    parent.addEventListener("abort", onParentAbort, { once: true });
    // The client-side stall timer: the server should end the watch after timeoutSeconds; if nothing
    // at all (event, bookmark or end) arrives for a bit longer, the connection is presumed dead.
    const stallMs = (timeoutSeconds + STALL_MARGIN_SECONDS) * 1000;
    let stalled = false;
    let timer = setTimeout(onStall, stallMs);
    function onStall() {
      stalled = true;
      abort.abort();
    }
    let delivered = false;
    this.stats.watches++;
    try {
      const events = this.rest.watch(
        collectionPath(this.kind, this.options.namespace),
        {
          resourceVersion: this.resourceVersion,
          allowWatchBookmarks: true,
          timeoutSeconds,
          labelSelector: this.options.labelSelector,
          fieldSelector: this.options.fieldSelector,
        },
        abort.signal,
        this.options.metadataOnly ? { accept: METADATA_OBJECT } : {},
      );
      for await (const event of events) {
        clearTimeout(timer);
        timer = setTimeout(onStall, stallMs);
        delivered = true;
        this.apply(event);
      }
    } catch (err) {
      if (stalled) {
        this.stats.stalls++;
        this.options.onStall?.(this.kind.kind);
        this.log.warn({ stallMs }, "watch stalled (no event or bookmark): restarting it");
        return delivered;
      }
      if (parent.aborted) return delivered;
      throw err;
    } finally {
      clearTimeout(timer);
      parent.removeEventListener("abort", onParentAbort);
      abort.abort();
    }
    return delivered;
  }

  /** The object as stored: the scope's transform, then {@link toStored}. */
  private prepare(obj: T): T {
    const { transform, metadataOnly } = this.options;
    // A PartialObjectMetadata says so in apiVersion/kind; stored under its real kind's, as
    // controller-runtime does, so every cached object of a kind looks alike.
    if (metadataOnly) obj = { ...obj, apiVersion: apiVersionOf(this.kind), kind: this.kind.kind };
    return toStored(transform ? transform(obj) : obj);
  }

  private apply(event: WatchEvent): void {
    if (event.type === "ERROR") {
      const status = event.object as { code?: number; message?: string; reason?: string };
      throw new ApiError(
        "WATCH",
        collectionPath(this.kind, this.options.namespace),
        status.code ?? 500,
        status,
        status.message ?? "",
      );
    }
    const obj = event.object as unknown as T;
    const rv = obj.metadata?.resourceVersion;
    if (event.type === "BOOKMARK") {
      if (rv) this.resourceVersion = rv;
      return;
    }
    const stored = this.prepare(obj);
    if (event.type === "DELETED") {
      const old = this.store.remove(objectKey(stored));
      this.emit("onDelete", old ?? stored);
    } else {
      const old = this.store.upsert(stored);
      if (old) this.emit("onUpdate", old, stored);
      else this.emit("onAdd", stored);
    }
    if (rv) this.resourceVersion = rv;
  }
}

/**
 * The process-wide cache: exactly one list+watch per kind (per watched namespace), however many
 * controllers or plugins ask for the kind. Reads are served from memory.
 *
 * When the manager watches a set of namespaces, a namespaced kind gets one informer per namespace and
 * cluster-scoped kinds one cluster-wide informer; reads merge them transparently.
 *
 * A kind's cache can be scoped ({@link CacheScope}, declared by a plugin with `ctx.cache(kind, ...)`,
 * as controller-runtime's cache `ByObject` options): label and field selectors, a transform applied
 * before storing, or no cache at all (reads go to the API server). One scope per kind for the whole
 * process, since every plugin reads the same cache: it must be declared before anything caches the
 * kind, and a second, different declaration is an error naming both.
 */
import type { RestClient } from "../client/rest.ts";
import { type Kind, kindId } from "../kinds.ts";
import { type Logger, silentLogger } from "../logger.ts";
import type { KubeObject, Named } from "../object.ts";
import { untilAborted } from "../sleep.ts";
import { type EventHandler, Informer, type InformerOptions } from "./informer.ts";
import { BY_NAMESPACE, type IndexFunc } from "./store.ts";

/** Options of the shared cache. */
export interface SharedCacheOptions {
  /** Namespaces to watch; empty or absent means all. */
  namespaces?: readonly string[];
  logger?: Logger;
  /** Passed to every informer (tests shorten timeouts). */
  informer?: Omit<InformerOptions, "namespace" | "logger" | "labelSelector" | "fieldSelector" | "transform" | "metadataOnly">;
}

/**
 * What the cache keeps of a kind (see the module comment). Objects outside the selectors are not in
 * the cache at all: `client.get` does not find them and no controller hears of them, so a controller
 * that owns the kind must create its children inside the scope.
 */
export interface CacheScope<T extends KubeObject = KubeObject> {
  /** Only objects with these labels, e.g. `app.kubernetes.io/managed-by=my-operator`. */
  labelSelector?: string;
  /** Only objects matching these fields, e.g. `type=kubernetes.io/tls` for Secrets. */
  fieldSelector?: string;
  /**
   * Applied to each object before it is stored: return it with only what readers need (drop a
   * Secret's data, a Pod's spec). It gets an object of its own; keep `metadata` whole.
   */
  transform?: (obj: T) => T;
  /**
   * Not cached at all: `client.get` and `client.list` read from the API server (a request each),
   * and no controller can watch the kind. For kinds read rarely and numerous in a cluster.
   */
  uncached?: boolean;
  /**
   * Only metadata (names, labels, annotations, owner references) is listed, watched and cached: for
   * kinds whose owners or labels are all a controller needs (Pods, Secrets). Read them through the
   * kind `ctx.cache` returns, typed as metadata only; the kind itself then has no cache to read.
   */
  metadataOnly?: boolean;
}

/** A cache scope and who declared it. */
interface DeclaredScope {
  scope: CacheScope;
  by: string;
}

/** A cache scope as text, to compare declarations and name them in errors. */
function describeScope(scope: CacheScope): string {
  if (scope.uncached) return "uncached";
  const parts = [
    scope.labelSelector ? `labelSelector "${scope.labelSelector}"` : "",
    scope.fieldSelector ? `fieldSelector "${scope.fieldSelector}"` : "",
    scope.transform ? "a transform" : "",
    scope.metadataOnly ? "metadata only" : "",
  ].filter(Boolean);
  return parts.length ? parts.join(", ") : "everything";
}

/** Thrown for a cache scope that cannot apply (declared too late, conflicting, or a watch of an uncached kind). */
export class CacheScopeError extends Error {
  override name = "CacheScopeError";
}

/** Filters for {@link SharedCache.list}. */
export interface ListOptions {
  namespace?: string;
  /** Only objects carrying all these labels. */
  labels?: Record<string, string>;
  /** Only objects with this value in the named index (see {@link SharedCache.addIndex}). */
  index?: { name: string; value: string };
}

/** All informers of one kind, read as one. */
export class KindInformers<T extends KubeObject = KubeObject> {
  readonly kind: Kind<T>;
  readonly informers: Informer<T>[];
  constructor(kind: Kind<T>, informers: Informer<T>[]) {
    this.kind = kind;
    this.informers = informers;
  }

  addHandler(handler: EventHandler<T>): () => void {
    const removers = this.informers.map((i) => i.addHandler(handler));
    return () => {
      for (const remove of removers) remove();
    };
  }

  get hasSynced(): boolean {
    return this.informers.every((i) => i.hasSynced);
  }

  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all(this.informers.map((i) => i.waitForSync(signal)));
  }

  /** The informer holding objects of `namespace` (undefined if that namespace is not watched). */
  private forNamespace(namespace: string | undefined): Informer<T> | undefined {
    return this.informers.find((i) => i.namespace === undefined || i.namespace === namespace);
  }

  get(name: string, namespace?: string): T | undefined {
    const informer = this.forNamespace(namespace);
    return informer?.store.get(namespace && this.kind.namespaced ? `${namespace}/${name}` : name);
  }

  list(options: ListOptions = {}): T[] {
    const sources = options.namespace && this.kind.namespaced ? [this.forNamespace(options.namespace)] : this.informers;
    const out: T[] = [];
    for (const informer of sources) {
      if (!informer) continue;
      const objs = options.index
        ? informer.store.byIndex(options.index.name, options.index.value)
        : options.namespace && this.kind.namespaced
          ? informer.store.byIndex(BY_NAMESPACE, options.namespace)
          : informer.store.list();
      for (const obj of objs) {
        if (options.namespace && this.kind.namespaced && obj.metadata.namespace !== options.namespace) continue;
        if (options.labels && !matchesLabels(obj, options.labels)) continue;
        out.push(obj);
      }
    }
    return out;
  }

  addIndex(name: string, fn: IndexFunc): void {
    for (const informer of this.informers) if (!informer.store.hasIndex(name)) informer.store.addIndex(name, fn);
  }
}

function matchesLabels(obj: KubeObject, labels: Record<string, string>): boolean {
  const have = obj.metadata.labels ?? {};
  for (const [k, v] of Object.entries(labels)) if (have[k] !== v) return false;
  return true;
}

/** See the module comment. */
export class SharedCache {
  private readonly rest: RestClient;
  private readonly options: SharedCacheOptions;
  private readonly kinds = new Map<string, KindInformers>();
  private readonly scopes = new Map<string, DeclaredScope>();
  /** Indexes declared lazily, added when their kind's informer is created. */
  private readonly pendingIndexes = new Map<string, { name: string; fn: IndexFunc }[]>();
  private signal: AbortSignal | undefined;
  private readonly running: Promise<void>[] = [];
  private readonly log: Logger;

  constructor(rest: RestClient, options: SharedCacheOptions = {}) {
    this.rest = rest;
    this.options = options;
    this.log = options.logger ?? silentLogger();
  }

  /** The namespaces this cache is limited to (empty: all). */
  get namespaces(): readonly string[] {
    return this.options.namespaces ?? [];
  }

  /**
   * Sets what the cache keeps of `kind`; `by` names the declarer in errors. Throws a
   * {@link CacheScopeError} when the kind is cached already or has a different scope; with `check`
   * it only checks.
   */
  scope(kind: Kind, scope: CacheScope, by: string, options: { check?: boolean } = {}): void {
    const id = kindId(kind);
    const declared = this.scopes.get(id);
    const wanted = scope;
    if (declared) {
      if (declared.scope.transform === wanted.transform && describeScope(declared.scope) === describeScope(wanted)) return;
      throw new CacheScopeError(
        `the cache of ${kind.kind} is scoped by ${declared.by} (${describeScope(declared.scope)}); ${by} declares another scope (${describeScope(wanted)}): one scope per kind, since all plugins share the cache`,
      );
    }
    if (this.kinds.has(id)) {
      throw new CacheScopeError(
        `${by} scopes the cache of ${kind.kind} (${describeScope(wanted)}), but ${kind.kind} is already cached whole (a controller or an earlier plugin uses it): the scope would hide objects from it`,
      );
    }
    if (!options.check) this.scopes.set(id, { scope: wanted, by });
  }

  /** The declared scope of a kind and who declared it, if any. */
  scopeOf(kind: Kind): { scope: CacheScope; by: string } | undefined {
    return this.scopes.get(kindId(kind));
  }

  /** Whether reads of `kind` bypass the cache (a scope with `uncached`). */
  isUncached(kind: Kind): boolean {
    return this.scopes.get(kindId(kind))?.scope.uncached === true;
  }

  /**
   * The informers of a kind, created on first use (and started at once if the cache runs). A kind
   * declared metadata-only is read through the handle `ctx.cache` returned: the kind itself would
   * promise a spec its cached objects do not have.
   */
  informer<T extends KubeObject, N extends boolean>(kind: Kind<T, N>): KindInformers<Named<T, N>> {
    const id = kindId(kind);
    const declared = this.scopes.get(id);
    if (declared?.scope.metadataOnly && !kind.metadataOnly) {
      throw new CacheScopeError(
        `${kind.kind} is cached metadata only (declared by ${declared.by}): read and watch it through the kind ctx.cache returned, or read whole objects with client.reader`,
      );
    }
    let entry = this.kinds.get(id) as KindInformers<Named<T, N>> | undefined;
    if (!entry) {
      if (declared?.scope.uncached) {
        throw new CacheScopeError(
          `${kind.kind} is not cached (${declared.by} declared it uncached), so it cannot be watched or indexed; client.get and client.list read it from the API server`,
        );
      }
      const scope = (declared?.scope ?? {}) as unknown as CacheScope<Named<T, N>>;
      const namespaces = kind.namespaced && this.namespaces.length > 0 ? this.namespaces : [undefined];
      const informers = namespaces.map(
        (namespace) =>
          new Informer<Named<T, N>>(this.rest, kind as unknown as Kind<Named<T, N>>, {
            ...this.options.informer,
            logger: this.log,
            ...(namespace ? { namespace } : {}),
            ...(scope.labelSelector ? { labelSelector: scope.labelSelector } : {}),
            ...(scope.fieldSelector ? { fieldSelector: scope.fieldSelector } : {}),
            ...(scope.transform ? { transform: scope.transform } : {}),
            ...(scope.metadataOnly ? { metadataOnly: true } : {}),
          }),
      );
      entry = new KindInformers(kind as unknown as Kind<Named<T, N>>, informers);
      for (const { name, fn } of this.pendingIndexes.get(id) ?? []) entry.addIndex(name, fn);
      this.pendingIndexes.delete(id);
      this.kinds.set(id, entry as unknown as KindInformers);
      if (this.signal) for (const informer of informers) this.running.push(informer.start(this.signal));
    }
    return entry;
  }

  /**
   * Registers a custom index for a kind, e.g. Tenants by `spec.namespace`. The kind is cached from
   * then on; with `lazy`, only once something reads it (a cache that serves a few reads, such as the
   * admission thread's, keeps no kind it is never asked for).
   */
  addIndex<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    name: string,
    fn: (obj: Named<T, N>) => readonly string[],
    options: { lazy?: boolean } = {},
  ): void {
    const id = kindId(kind);
    if (options.lazy && !this.kinds.has(id)) {
      this.pendingIndexes.set(id, [...(this.pendingIndexes.get(id) ?? []), { name, fn: fn as IndexFunc }]);
      return;
    }
    this.informer(kind).addIndex(name, fn as IndexFunc);
  }

  /** Kinds with informers, for diagnostics and tests. */
  informedKinds(): KindInformers[] {
    return [...this.kinds.values()];
  }

  /** Starts every informer (and any created later); resolves when `signal` aborts and all have stopped. */
  async start(signal: AbortSignal): Promise<void> {
    this.signal = signal;
    for (const entry of this.kinds.values()) for (const informer of entry.informers) this.running.push(informer.start(signal));
    await untilAborted(signal);
    await Promise.all(this.running);
  }

  /** Resolves when every informer created so far has listed once. */
  async waitForSync(signal?: AbortSignal): Promise<void> {
    await Promise.all([...this.kinds.values()].map((k) => k.waitForSync(signal)));
  }

  get hasSynced(): boolean {
    return [...this.kinds.values()].every((k) => k.hasSynced);
  }
}

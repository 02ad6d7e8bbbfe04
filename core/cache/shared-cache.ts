/**
 * The process-wide cache: exactly one list+watch per kind (per watched namespace), however many
 * controllers or plugins ask for the kind. Reads are served from memory.
 *
 * When the manager watches a set of namespaces, a namespaced kind gets one informer per namespace and
 * cluster-scoped kinds one cluster-wide informer; reads merge them transparently.
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
  informer?: Omit<InformerOptions, "namespace" | "logger">;
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

  /** The informers of a kind, created on first use (and started at once if the cache runs). */
  informer<T extends KubeObject, N extends boolean>(kind: Kind<T, N>): KindInformers<Named<T, N>> {
    const id = kindId(kind);
    let entry = this.kinds.get(id) as KindInformers<Named<T, N>> | undefined;
    if (!entry) {
      const namespaces = kind.namespaced && this.namespaces.length > 0 ? this.namespaces : [undefined];
      const informers = namespaces.map(
        (namespace) =>
          new Informer<Named<T, N>>(this.rest, kind as unknown as Kind<Named<T, N>>, {
            ...this.options.informer,
            logger: this.log,
            ...(namespace ? { namespace } : {}),
          }),
      );
      entry = new KindInformers(kind as unknown as Kind<Named<T, N>>, informers);
      this.kinds.set(id, entry as unknown as KindInformers);
      if (this.signal) for (const informer of informers) this.running.push(informer.start(this.signal));
    }
    return entry;
  }

  /** Registers a custom index for a kind, e.g. Tenants by `spec.namespace`. */
  addIndex<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    name: string,
    fn: (obj: Named<T, N>) => readonly string[],
  ): void {
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

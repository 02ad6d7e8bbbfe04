/**
 * The client plugins use: reads come from the shared cache (no API request), writes go to the API.
 *
 * Guarantees: `get`/`list` never call the API once the kind's informer has synced (the first read of
 * a kind starts its informer and waits for its list, as controller-runtime's cache does). Objects
 * read are frozen: copy them (`structuredClone`) before changing. Writes return the API's answer.
 * `reader` reads straight from the API for the rare case that needs it (uncached, costs a request).
 */
import { CacheScopeError, type KindInformers, type ListOptions, type SharedCache } from "../cache/shared-cache.ts";
import { apiVersionOf, collectionPath, type Kind, objectPath } from "../kinds.ts";
import type { KubeObject, Named } from "../object.ts";
import { isNotFound, PatchType, type RequestOptions, type RestClient } from "./rest.ts";

/** Options for writes. */
export interface WriteOptions {
  /** Server-side dry run. */
  dryRun?: boolean;
  /** Field manager name; default "kubeplug". */
  fieldManager?: string;
  /** Aborts the request. */
  signal?: AbortSignal;
}

/** Options for deletes. */
export interface DeleteOptions {
  propagationPolicy?: "Foreground" | "Background" | "Orphan";
  /** Precondition: only delete this exact object. */
  uid?: string;
}

/**
 * A write refused before it was sent: this replica may not write now (it is not the leader, or its
 * lease was last renewed longer ago than the renew deadline). Nothing reached the API server.
 */
export class FencedError extends Error {
  override name = "FencedError";
}

/**
 * Throws {@link FencedError} when writes are not allowed now; otherwise may return a signal that
 * aborts when the right to write ends (a lost lease), which aborts the writes then in flight.
 */
export type WriteFence = () => AbortSignal | undefined;

type Patch = Record<string, unknown> | readonly Record<string, unknown>[];

const FIELD_MANAGER = "kubeplug";

/** The name of an object about to be written by name; a clear error instead of a request to a wrong URL. */
function nameOf(kind: Kind, obj: KubeObject): string {
  const { name } = obj.metadata;
  if (!name) throw new Error(`a ${kind.kind} needs metadata.name to be written by name`);
  return name;
}

/** See the module comment. */
export class Client {
  readonly rest: RestClient;
  readonly cache: SharedCache;
  private readonly fieldManager: string;
  private readonly fence: WriteFence | undefined;

  constructor(rest: RestClient, cache: SharedCache, options: { fieldManager?: string; fence?: WriteFence } = {}) {
    this.rest = rest;
    this.cache = cache;
    this.fieldManager = options.fieldManager ?? FIELD_MANAGER;
    this.fence = options.fence;
  }

  /**
   * The same client whose writes first ask `fence`, which throws {@link FencedError} to refuse one
   * (the manager fences the controllers' writes with the leader lease) and may return a signal that
   * abandons the write in flight (also a {@link FencedError}). Reads are not fenced.
   */
  fenced(fence: WriteFence): Client {
    return new Client(this.rest, this.cache, { fieldManager: this.fieldManager, fence });
  }

  private async write<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    const term = this.fence?.();
    if (!term) return this.rest.request<T>(method, path, options);
    // A write in flight when the right to write ends is abandoned: after a lost lease another replica
    // may lead, and a request hanging on an API server that lost etcd would otherwise hold the
    // controllers' drain (and the next term) until its own timeout.
    try {
      return await this.rest.request<T>(method, path, {
        ...options,
        signal: options.signal ? AbortSignal.any([options.signal, term]) : term,
      });
    } catch (err) {
      if (term.aborted && !options.signal?.aborted) {
        throw new FencedError(
          `${method} ${path} abandoned in flight: the right to write ended (it may or may not have been applied)`,
        );
      }
      throw err;
    }
  }

  private async synced<T extends KubeObject, N extends boolean>(kind: Kind<T, N>): Promise<KindInformers<Named<T, N>>> {
    const informer = this.cache.informer(kind);
    if (!informer.hasSynced) await informer.waitForSync();
    return informer;
  }

  /**
   * An object from the cache, or undefined when it does not exist (or is outside the kind's cache
   * scope). A kind declared uncached is read from the API server.
   */
  async get<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    name: string,
    namespace?: string,
  ): Promise<Named<T, N> | undefined> {
    if (this.cache.isUncached(kind)) return this.reader.get(kind, name, namespace);
    return (await this.synced(kind)).get(name, namespace);
  }

  /** Objects from the cache; a kind declared uncached is listed from the API server. */
  async list<T extends KubeObject, N extends boolean>(kind: Kind<T, N>, options: ListOptions = {}): Promise<Named<T, N>[]> {
    if (this.cache.isUncached(kind)) {
      if (options.index) {
        throw new CacheScopeError(
          `${kind.kind} is not cached, so it has no index "${options.index.name}": list it by namespace or labels`,
        );
      }
      const selector = Object.entries(options.labels ?? {})
        .map(([k, v]) => `${k}=${v}`)
        .join(",");
      return this.reader.list(kind, options.namespace, selector || undefined);
    }
    return (await this.synced(kind)).list(options);
  }

  private query(options: WriteOptions) {
    return { fieldManager: options.fieldManager ?? this.fieldManager, dryRun: options.dryRun ? "All" : undefined };
  }

  private withType<T extends KubeObject>(kind: Kind<T>, obj: T): T {
    return { ...obj, apiVersion: apiVersionOf(kind), kind: kind.kind };
  }

  /** Creates an object; its namespace comes from `metadata.namespace`. */
  create<T extends KubeObject, N extends boolean>(kind: Kind<T, N>, obj: T, options: WriteOptions = {}): Promise<Named<T, N>> {
    return this.write<Named<T, N>>("POST", collectionPath(kind, obj.metadata.namespace), {
      body: this.withType(kind, obj),
      query: this.query(options),
      signal: options.signal,
    });
  }

  /** Replaces an object (optimistic concurrency through `metadata.resourceVersion`). */
  update<T extends KubeObject, N extends boolean>(kind: Kind<T, N>, obj: T, options: WriteOptions = {}): Promise<Named<T, N>> {
    return this.write<Named<T, N>>("PUT", objectPath(kind, nameOf(kind, obj), obj.metadata.namespace), {
      body: this.withType(kind, obj),
      query: this.query(options),
      signal: options.signal,
    });
  }

  /** Patches an object; merge patch by default. */
  patch<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    name: string,
    namespace: string | undefined,
    patch: Patch,
    type: PatchType = PatchType.merge,
    options: WriteOptions = {},
  ): Promise<Named<T, N>> {
    return this.write<Named<T, N>>("PATCH", objectPath(kind, name, namespace), {
      body: patch,
      contentType: type,
      query: this.query(options),
      signal: options.signal,
    });
  }

  /** Server-side apply of a (partial) desired object; `force` takes over conflicting fields. */
  apply<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    obj: T,
    options: WriteOptions & { force?: boolean } = {},
  ): Promise<Named<T, N>> {
    return this.write<Named<T, N>>("PATCH", objectPath(kind, nameOf(kind, obj), obj.metadata.namespace), {
      body: this.withType(kind, obj),
      contentType: PatchType.apply,
      query: { ...this.query(options), force: options.force ?? true },
      signal: options.signal,
    });
  }

  /** Replaces the status subresource of an object. */
  updateStatus<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    obj: T,
    options: WriteOptions = {},
  ): Promise<Named<T, N>> {
    return this.write<Named<T, N>>("PUT", objectPath(kind, nameOf(kind, obj), obj.metadata.namespace, "status"), {
      body: this.withType(kind, obj),
      query: this.query(options),
      signal: options.signal,
    });
  }

  /** Patches the status subresource; merge patch by default. */
  patchStatus<T extends KubeObject>(
    kind: Kind<T>,
    name: string,
    namespace: string | undefined,
    patch: Patch,
    type: PatchType = PatchType.merge,
    options: WriteOptions = {},
  ): Promise<T> {
    return this.write<T>("PATCH", objectPath(kind, name, namespace, "status"), {
      body: patch,
      contentType: type,
      query: this.query(options),
      signal: options.signal,
    });
  }

  /** Deletes an object; returns false when it was already gone. */
  async delete(kind: Kind, name: string, namespace?: string, options: DeleteOptions = {}): Promise<boolean> {
    try {
      await this.write("DELETE", objectPath(kind, name, namespace), {
        body: {
          kind: "DeleteOptions",
          apiVersion: "v1",
          ...(options.propagationPolicy ? { propagationPolicy: options.propagationPolicy } : {}),
          ...(options.uid ? { preconditions: { uid: options.uid } } : {}),
        },
      });
      return true;
    } catch (err) {
      if (isNotFound(err)) return false;
      throw err;
    }
  }

  /** Uncached reads, straight from the API server. */
  readonly reader = {
    get: async <T extends KubeObject, N extends boolean>(
      kind: Kind<T, N>,
      name: string,
      namespace?: string,
      options: { signal?: AbortSignal } = {},
    ): Promise<Named<T, N> | undefined> => {
      try {
        return await this.rest.request<Named<T, N>>("GET", objectPath(kind, name, namespace), options);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    },
    list: async <T extends KubeObject, N extends boolean>(
      kind: Kind<T, N>,
      namespace?: string,
      labelSelector?: string,
    ): Promise<Named<T, N>[]> => {
      const out = await this.rest.request<{ items: Named<T, N>[] }>("GET", collectionPath(kind, namespace), {
        query: { labelSelector },
      });
      return out.items;
    },
  };
}

/**
 * The in-memory object store behind an informer: a Map by `namespace/name` plus secondary indexes.
 *
 * Guarantees: every operation is O(1) per object (plus index sizes), so loading 10,000 objects is
 * linear; objects are stored without `metadata.managedFields` and deep-frozen, so an object handed
 * out of the cache cannot be changed by the caller and cannot corrupt the cache (a write to it throws
 * a TypeError in strict-mode code). Copy with `structuredClone` before modifying.
 */
import { type KubeObject, objectKey } from "../object.ts";

/** Returns the index values of an object (none, one or many). */
export type IndexFunc = (obj: KubeObject) => readonly string[];

/** Built-in index: by namespace. */
export const BY_NAMESPACE = "namespace";
/** Built-in index: by the UID of the controller owner reference. */
export const BY_CONTROLLER_UID = "controllerUID";

const byNamespace: IndexFunc = (obj) => (obj.metadata.namespace ? [obj.metadata.namespace] : []);
const byControllerUid: IndexFunc = (obj) => {
  const owner = obj.metadata.ownerReferences?.find((ref) => ref.controller);
  return owner ? [owner.uid] : [];
};

/**
 * Cached objects repeat the same short strings many times (namespace, labels, the owner's name and
 * uid in every child, image, protocol, policy names), and JSON.parse makes a new string for each:
 * sharing one copy shrinks every cached object (bench/README.md has the figures). The table is
 * bounded: when full it starts over, so strings no longer cached are not kept alive for long.
 */
const INTERN_MAX_ENTRIES = 50_000;
const INTERN_MAX_LENGTH = 64;
const interned = new Map<string, string>();
/** Values unique per object or per version: interning them would only churn the table. */
const UNIQUE_KEYS = new Set(["resourceVersion", "creationTimestamp", "clusterIP", "lastTransitionTime", "lastUpdateTime"]);

function intern(value: string): string {
  if (value.length > INTERN_MAX_LENGTH) return value;
  const shared = interned.get(value);
  if (shared !== undefined) return shared;
  if (interned.size >= INTERN_MAX_ENTRIES) interned.clear();
  interned.set(value, value);
  return value;
}

/** Freezes `value` and everything under it, sharing repeated strings (see {@link intern}) on the way. */
function deepFreeze<T>(value: T): T {
  if (value && typeof value === "object" && !Object.isFrozen(value)) {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) {
      const child = record[key];
      if (typeof child !== "string") deepFreeze(child);
      else if (!UNIQUE_KEYS.has(key)) record[key] = intern(child);
    }
    Object.freeze(value);
  }
  return value;
}

/** Prepares an object for storage: drops managedFields, shares repeated strings, freezes it. Mutates the argument. */
export function toStored<T extends KubeObject>(obj: T): T {
  if (obj.metadata?.managedFields) {
    // A new metadata object without the field, not `delete`: deleting a property turns V8's object
    // into a dictionary, which takes more heap per cached object (bench/README.md).
    const { managedFields: _, ...metadata } = obj.metadata;
    obj.metadata = metadata;
  }
  return deepFreeze(obj);
}

/** Changes between the store and a fresh list, as {@link Store.replace} reports them. */
export interface ReplaceDiff<T> {
  added: T[];
  updated: { old: T; obj: T }[];
  deleted: T[];
}

/** See the module comment. */
export class Store<T extends KubeObject = KubeObject> {
  private readonly items = new Map<string, T>();
  private readonly indexers = new Map<string, IndexFunc>();
  private readonly indices = new Map<string, Map<string, Set<string>>>();

  constructor() {
    this.addIndex(BY_NAMESPACE, byNamespace);
    this.addIndex(BY_CONTROLLER_UID, byControllerUid);
  }

  /** Adds an index; existing objects are indexed at once. Adding a name twice is an error. */
  addIndex(name: string, fn: IndexFunc): void {
    if (this.indexers.has(name)) throw new Error(`index "${name}" already exists`);
    this.indexers.set(name, fn);
    this.indices.set(name, new Map());
    for (const [key, obj] of this.items) this.indexOne(name, fn, key, obj);
  }

  hasIndex(name: string): boolean {
    return this.indexers.has(name);
  }

  private indexOne(name: string, fn: IndexFunc, key: string, obj: T): void {
    const index = this.indices.get(name) as Map<string, Set<string>>;
    for (const value of fn(obj)) {
      const keys = index.get(value);
      if (keys) keys.add(key);
      else index.set(value, new Set([key]));
    }
  }

  private unindex(key: string, obj: T): void {
    for (const [name, fn] of this.indexers) {
      const index = this.indices.get(name) as Map<string, Set<string>>;
      for (const value of fn(obj)) {
        const keys = index.get(value);
        keys?.delete(key);
        if (keys?.size === 0) index.delete(value);
      }
    }
  }

  /** Inserts or replaces an object (already prepared by {@link toStored}); returns the previous one. */
  upsert(obj: T): T | undefined {
    const key = objectKey(obj);
    const old = this.items.get(key);
    if (old) this.unindex(key, old);
    this.items.set(key, obj);
    for (const [name, fn] of this.indexers) this.indexOne(name, fn, key, obj);
    return old;
  }

  /** Removes an object by key; returns it. */
  remove(key: string): T | undefined {
    const old = this.items.get(key);
    if (old) {
      this.unindex(key, old);
      this.items.delete(key);
    }
    return old;
  }

  get(key: string): T | undefined {
    return this.items.get(key);
  }

  /** All objects (a new array of the frozen objects). */
  list(): T[] {
    return [...this.items.values()];
  }

  /** Objects whose index `name` has `value`. */
  byIndex(name: string, value: string): T[] {
    const index = this.indices.get(name);
    if (!index) throw new Error(`no index "${name}": register it before listing by it`);
    const keys = index.get(value);
    if (!keys) return [];
    const out: T[] = [];
    for (const key of keys) out.push(this.items.get(key) as T);
    return out;
  }

  get size(): number {
    return this.items.size;
  }

  /**
   * Replaces the whole content with a fresh list (objects prepared by {@link toStored}) and reports
   * what changed, so a relist after 410 Gone can emit exactly the differences.
   */
  replace(objs: T[]): ReplaceDiff<T> {
    const diff: ReplaceDiff<T> = { added: [], updated: [], deleted: [] };
    const seen = new Set<string>();
    for (const obj of objs) {
      const key = objectKey(obj);
      seen.add(key);
      const old = this.upsert(obj);
      if (!old) diff.added.push(obj);
      else if (old.metadata.resourceVersion !== obj.metadata.resourceVersion) diff.updated.push({ old, obj });
    }
    for (const [key, obj] of [...this.items]) {
      if (!seen.has(key)) {
        this.remove(key);
        diff.deleted.push(obj);
      }
    }
    return diff;
  }
}

/**
 * The plugin contract. A plugin is one operator: it declares its kinds, the few permissions the
 * framework cannot derive, and in `setup()` registers controllers and admission webhooks. The
 * manager loads the plugins named in its configuration; `kubeplug manifests` runs the same `setup()`
 * without a cluster to generate CRDs, RBAC and webhook configurations.
 */
import type { CacheScope } from "./cache/shared-cache.ts";
import type { Client } from "./client/client.ts";
import type { ForStep } from "./controller/builder.ts";
import type { Kind } from "./kinds.ts";
import type { Logger } from "./logger.ts";
import type { ManagerConfig } from "./manager/config.ts";
import type { Check } from "./manager/health.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { KubeObject, Named } from "./object.ts";
import type { WebhookBuilder } from "./webhook.ts";

/** An RBAC rule, as in a ClusterRole. No wildcards: name every group, resource and verb. */
export interface PolicyRule {
  apiGroups: readonly string[];
  resources: readonly string[];
  verbs: readonly string[];
  resourceNames?: readonly string[];
}

/** RBAC verbs on a resource. */
export type Verb =
  | "get"
  | "list"
  | "watch"
  | "create"
  | "update"
  | "patch"
  | "delete"
  | "deletecollection"
  | "bind"
  | "escalate"
  | "impersonate";

/**
 * A permission the framework cannot derive from a plugin's controllers (e.g. reading Pods uncached,
 * `bind` on the `admin` ClusterRole). Given by kind, so its scope (namespaced or cluster-wide) and
 * resource name come from the kind itself.
 */
export interface Permission {
  kind: Kind;
  verbs: readonly Verb[];
  /** A subresource such as `status` or `log`. */
  subresource?: string;
  /** Only these objects. */
  resourceNames?: readonly string[];
}

/** Something the manager runs: `start` resolves only after it has stopped (after `signal` aborts). */
export interface Runnable {
  readonly name: string;
  /** Runs only on the leader (controllers) or on every replica (servers). */
  readonly needsLeaderElection: boolean;
  start(signal: AbortSignal): Promise<void>;
}

/** What a plugin's `setup()` receives. Everything here is a declaration: safe without a cluster. */
export interface PluginContext {
  /** Starts a controller: `.for(kind).owns(child).finalizer(name, cleanup).reconcile(fn)`. */
  controller(name: string): ForStep;
  /** The admission webhooks of a kind: `.default(fn?)` and `.validate(fn?)`. */
  webhooks<T extends KubeObject, N extends boolean>(kind: Kind<T, N>): WebhookBuilder<Named<T, N>>;
  /**
   * What the shared cache keeps of a kind, for every plugin: label/field selectors, a transform
   * applied before storing, `metadataOnly`, or `uncached` (reads go to the API server). Declare it
   * before any controller uses the kind; one scope per kind in a process, so another plugin's
   * different scope, or another plugin's controller on a scoped kind, fails setup with both named.
   * `ctx.cache(k8s.Secret, { labelSelector: "app.kubernetes.io/managed-by=my-op" })`.
   * Returns the kind to read and watch it through: with `metadataOnly`, a kind whose objects are
   * typed as metadata only (`const PodMeta = ctx.cache(k8s.Pod, { metadataOnly: true })`).
   */
  cache<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    scope: CacheScope<KubeObject> & { metadataOnly: true },
  ): Kind<KubeObject, N>;
  cache<T extends KubeObject, N extends boolean>(kind: Kind<T, N>, scope: CacheScope<Named<T, N>>): Kind<T, N>;
  /**
   * A cache index for a kind (e.g. Tenants by `spec.namespace`), read with
   * `client.list(kind, { index: { name, value } })` by reconcilers, watch maps and webhooks.
   */
  addIndex<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    name: string,
    fn: (obj: Named<T, N>) => readonly string[],
  ): void;
  /**
   * Cached reads, API writes; for watch maps and runnables (reconcilers get it on their context).
   * With leader election its writes are fenced by the lease: refused (FencedError) on a replica
   * that does not lead, so a runnable that writes must need leader election.
   */
  readonly client: Client;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly config: ManagerConfig;
  addHealthCheck(name: string, check: Check): void;
  addReadyCheck(name: string, check: Check): void;
  /** Runs something alongside the controllers (e.g. a loop that enqueues on an external event). */
  add(runnable: Runnable): void;
}

/** A plugin; see the module comment. */
export interface Plugin {
  /** Lower-case name used by `--plugins` and in metrics (`controller` label). */
  readonly name: string;
  /** Kinds this plugin defines (their CRDs are generated from these). */
  readonly kinds: readonly Kind[];
  /**
   * Only what the framework cannot derive. RBAC for a controller's `for`, `owns` and `watches` kinds,
   * their status and finalizers, and Events is generated from the controllers themselves.
   */
  readonly rbac?: readonly Permission[];
  /**
   * Declares controllers, webhooks, indexes and cache scopes. It runs more than once: on the main
   * thread, on the admission thread (for the webhooks) and when manifests are generated, so it must
   * only declare, and webhooks must not rely on state a reconciler keeps in module variables.
   */
  setup(ctx: PluginContext): void | Promise<void>;
}

/** Declares a plugin (identity function that checks the shape at compile time). */
export function definePlugin<P extends Plugin>(plugin: P): P {
  return plugin;
}

/** True when `value` has the shape of a {@link Plugin} (checked when loading plugins by name). */
export function isPlugin(value: unknown): value is Plugin {
  const p = value as Partial<Plugin> | null;
  return (
    typeof p === "object" &&
    p !== null &&
    typeof p.name === "string" &&
    Array.isArray(p.kinds) &&
    typeof p.setup === "function" &&
    (p.rbac === undefined || Array.isArray(p.rbac))
  );
}

/**
 * The plugin contract. A plugin is one operator: it declares its kinds and the RBAC rules its
 * controllers need, and in `setup()` registers controllers (and, through extensions such as the
 * webhook server, admission handlers). The manager loads the plugins named in its configuration.
 */
import type { SharedCache } from "./cache/shared-cache.ts";
import type { Client } from "./client/client.ts";
import type { ForStep } from "./controller/builder.ts";
import type { EventRecorder } from "./events/recorder.ts";
import type { Kind } from "./kinds.ts";
import type { Logger } from "./logger.ts";
import type { ManagerConfig } from "./manager/config.ts";
import type { Check } from "./manager/health.ts";
import type { Metrics } from "./metrics/metrics.ts";
import type { KubeObject } from "./object.ts";

/** An RBAC rule, as in a ClusterRole. No wildcards: name every group, resource and verb. */
export interface PolicyRule {
  apiGroups: readonly string[];
  resources: readonly string[];
  verbs: readonly string[];
  resourceNames?: readonly string[];
}

/** Something the manager runs: `start` resolves only after it has stopped (after `signal` aborts). */
export interface Runnable {
  readonly name: string;
  /** Runs only on the leader (controllers) or on every replica (servers). */
  readonly needsLeaderElection: boolean;
  start(signal: AbortSignal): Promise<void>;
}

/** What a plugin's `setup()` receives. */
export interface PluginContext {
  /** Starts a controller builder; see core/controller/builder.ts. */
  controller(name: string): ForStep;
  readonly client: Client;
  readonly cache: SharedCache;
  /**
   * Registers a cache index for a kind (e.g. Tenants by `spec.namespace`), so reconcilers and
   * webhooks can list by it: `client.list(kind, { index: { name, value } })`. A declaration like
   * `controller()`: safe in setup() even when no cluster is there (manifest generation).
   */
  addIndex<T extends KubeObject>(kind: Kind<T>, name: string, fn: (obj: T) => readonly string[]): void;
  /** An event recorder reporting as `kubeplug/<component>`. */
  recorder(component: string): EventRecorder;
  readonly logger: Logger;
  readonly metrics: Metrics;
  readonly config: ManagerConfig;
  addHealthCheck(name: string, check: Check): void;
  addReadyCheck(name: string, check: Check): void;
  /** Runs something alongside the controllers. */
  add(runnable: Runnable): void;
  /** Extensions registered by the composition root, e.g. the admission webhook registry. */
  extension<T>(key: ExtensionKey<T>): T;
}

/** A typed key for {@link PluginContext.extension}. */
export interface ExtensionKey<T> {
  readonly name: string;
  readonly __type?: T;
}

/** Makes an extension key. */
export function extensionKey<T>(name: string): ExtensionKey<T> {
  return { name };
}

/** A plugin; see the module comment. */
export interface Plugin {
  /** Lower-case name used by `--plugins` and in metrics (`controller` label). */
  readonly name: string;
  /** Kinds this plugin defines (their CRDs are generated from these). */
  readonly kinds: readonly Kind[];
  /** Exactly what its controllers need, nothing more. */
  readonly rbac: readonly PolicyRule[];
  setup(ctx: PluginContext): void | Promise<void>;
}

/** Declares a plugin (identity function that checks the shape at compile time). */
export function definePlugin<P extends Plugin>(plugin: P): P {
  return plugin;
}

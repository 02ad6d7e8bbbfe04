/**
 * kubeplug's runtime entry: everything the CLI, tests and benchmarks use (the store, the work queue,
 * the REST client, the container, the leader elector...) on top of the plugin API (core/index.ts).
 * Plugins import core/index.ts only.
 */

export * from "./builtin-kinds.ts";
export { type EventHandler, Informer, type InformerOptions } from "./cache/informer.ts";
export {
  type CacheScope,
  CacheScopeError,
  KindInformers,
  type ListOptions,
  SharedCache,
  type SharedCacheOptions,
} from "./cache/shared-cache.ts";
export { BY_CONTROLLER_UID, BY_NAMESPACE, type IndexFunc, Store } from "./cache/store.ts";
export { Client, type DeleteOptions, FencedError, type WriteFence, type WriteOptions } from "./client/client.ts";
export {
  ApiError,
  isAlreadyExists,
  isConflict,
  isGone,
  isNotFound,
  PatchType,
  RestClient,
  type RestMetrics,
  type Status,
} from "./client/rest.ts";
export type { ControllerBuilder, ControllerSpec, ForStep, MapFn, ReconcileStep, Source } from "./controller/builder.ts";
export { Controller, type Request, type RequestContext, type RequestReconciler } from "./controller/controller.ts";
export { and, not, or, resourceVersionChanged } from "./controller/predicates.ts";
export * from "./controller/ratelimiter.ts";
export { WorkQueue } from "./controller/workqueue.ts";
export {
  type CustomKind,
  type CustomKindDefinition,
  type CustomObject,
  crdOf,
  openApiSchema,
  type PrinterColumn,
  pluralOf,
} from "./crd.ts";
export { ApiEventRecorder, type EventRecorder } from "./events/recorder.ts";
export * from "./helpers/index.ts";
export * from "./index.ts";
export { apiVersionOf, collectionPath, kindId, type ObjectOf, objectPath, resourceName } from "./kinds.ts";
export { DEFAULT_LEASE_TIMINGS, LeaderElector, type LeaseTimings } from "./leader/elector.ts";
export { createLogger, type LogLevel, silentLogger } from "./logger.ts";
export {
  ConfigError,
  envName,
  type ManagerConfig,
  managerFlagsHelp,
  parseDuration,
  parseManagerConfig,
} from "./manager/config.ts";
export {
  buildContainer,
  type ContainerOptions,
  createManager,
  loadKubeConfig,
  ownNamespace,
  PluginLoadError,
  selectPlugins,
  TOKENS,
} from "./manager/container.ts";
export { type Check, HealthChecks } from "./manager/health.ts";
export { inspectPlugin, type PluginDeclarations } from "./manager/inspect.ts";
export { Manager, type ManagerDeps, type ManagerExit } from "./manager/manager.ts";
export { type PluginHost, pluginContext } from "./manager/plugin-context.ts";
export { type PluginModule, pluginModuleOf, recordPluginModule } from "./manager/plugin-modules.ts";
export { Metrics } from "./metrics/metrics.ts";
export { type ObjectMeta, type OwnerReference, objectKey, splitKey, type Wire } from "./object.ts";
export { isPlugin, type PolicyRule, type Verb } from "./plugin.ts";
export { rulesOf } from "./rbac.ts";
export { sleep, untilAborted } from "./sleep.ts";
export type { Defaulter, Operation, Validator, WebhookOptions, WebhookRegistrar } from "./webhook.ts";

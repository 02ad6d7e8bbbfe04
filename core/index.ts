/** kubeplug's runtime: the public API plugins and the CLI use. */
export * from "./builtin-kinds.ts";
export { type EventHandler, Informer, type InformerOptions } from "./cache/informer.ts";
export { KindInformers, type ListOptions, SharedCache, type SharedCacheOptions } from "./cache/shared-cache.ts";
export { BY_CONTROLLER_UID, BY_NAMESPACE, type IndexFunc, Store } from "./cache/store.ts";
export { Client, type DeleteOptions, type WriteOptions } from "./client/client.ts";
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
export type { ControllerBuilder, ControllerSettings, ForStep, WatchOptions } from "./controller/builder.ts";
export { Controller, type MapFn, type ReconcileContext, type Reconciler, type Request } from "./controller/controller.ts";
export * from "./controller/predicates.ts";
export * from "./controller/ratelimiter.ts";
export { Action, type ReconcileResult, TerminalError } from "./controller/result.ts";
export { WorkQueue } from "./controller/workqueue.ts";
export * from "./crd.ts";
export { ApiEventRecorder, type EventRecorder, type EventType } from "./events/recorder.ts";
export * from "./helpers/index.ts";
export * from "./kinds.ts";
export { DEFAULT_LEASE_TIMINGS, LeaderElector, type LeaseTimings } from "./leader/elector.ts";
export { createLogger, type Logger, type LogLevel, silentLogger } from "./logger.ts";
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
export { inspectPlugins } from "./manager/inspect.ts";
export { Manager, type ManagerDeps, type ManagerExit } from "./manager/manager.ts";
export { Metrics } from "./metrics/metrics.ts";
export * from "./object.ts";
export * from "./plugin.ts";

/**
 * The plugin API: everything a plugin imports, and nothing else (runtime internals are in
 * core/runtime.ts, for the CLI, tests and benchmarks). See README's "Write a plugin".
 */
import { claimSingleton } from "./singleton.ts";

// One copy of kubeplug per process: the package root this module belongs to.
claimSingleton(new URL("..", import.meta.url).href);

export type { Client } from "./client/client.ts";
export { ApiError, isNotFound } from "./client/rest.ts";
// Controllers and reconciling.
export type { ControllerHandle, ControllerSettings, Reconciler } from "./controller/builder.ts";
export { annotationsChanged, generationChanged, labelsChanged, type Predicate } from "./controller/predicates.ts";
export type { ReconcileContext } from "./controller/reconcile-context.ts";
export { Action, type ReconcileResult, TerminalError } from "./controller/result.ts";
export { type CustomKind, defineKind, type ObjectOfKind } from "./crd.ts";
export type { EventType } from "./events/recorder.ts";
export { type Condition, conditionSchema, findCondition, withConditions } from "./helpers/conditions.ts";
export * as k8s from "./k8s.ts";
export { type Kind, kindOf } from "./kinds.ts";
export type { Logger } from "./logger.ts";
export type { KubeObject, Named, ObjectKey } from "./object.ts";
// A plugin and its kinds.
export { definePlugin, type Permission, type Plugin, type PluginContext, type Runnable } from "./plugin.ts";
export { quantity, sameQuantity } from "./quantity.ts";

// Admission.
export type { AdmissionContext, FieldCause, ValidationResult, WebhookBuilder } from "./webhook.ts";

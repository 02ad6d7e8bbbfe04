/**
 * The one builder of the context a plugin's `setup()` receives, over a host: the manager (which runs
 * what is declared) or the inspector (which records it to generate manifests). Both hand plugins the
 * same context, so a plugin cannot behave differently when its manifests are generated.
 */
import type { CacheScope } from "../cache/shared-cache.ts";
import { type ControllerHandle, type ControllerSpec, controllerBuilder } from "../controller/builder.ts";
import { type Kind, metadataOnlyKind } from "../kinds.ts";
import type { KubeObject } from "../object.ts";
import type { PluginContext } from "../plugin.ts";
import { type WebhookRegistrar, webhookBuilder } from "../webhook.ts";

/** What a plugin context is built over: the context's plain members, and where declarations go. */
export interface PluginHost extends Omit<PluginContext, "controller" | "webhooks" | "addIndex" | "cache"> {
  registerController(spec: ControllerSpec): { mistakes: string[]; handle: ControllerHandle };
  addIndex(kind: Kind, name: string, fn: (obj: KubeObject) => readonly string[]): void;
  cache(kind: Kind, scope: CacheScope): void;
  /** Absent when the composition root added no webhook server. */
  readonly webhooks: WebhookRegistrar | undefined;
}

/** See the module comment. */
export function pluginContext(host: PluginHost): PluginContext {
  return {
    controller: (name) => controllerBuilder(name, (spec) => host.registerController(spec)),
    webhooks: (kind) => {
      const registrar = host.webhooks;
      if (!registrar) throw new Error(`webhooks(${kind.kind}): this manager has no webhook server`);
      return webhookBuilder(registrar, kind);
    },
    addIndex: (kind, name, fn) => host.addIndex(kind, name, fn as (obj: KubeObject) => readonly string[]),
    cache: ((kind: Kind, scope: CacheScope) => {
      host.cache(kind, scope);
      return scope.metadataOnly ? metadataOnlyKind(kind) : kind;
    }) as PluginContext["cache"],
    get client() {
      return host.client;
    },
    get logger() {
      return host.logger;
    },
    get metrics() {
      return host.metrics;
    },
    get config() {
      return host.config;
    },
    addHealthCheck: (name, check) => host.addHealthCheck(name, check),
    addReadyCheck: (name, check) => host.addReadyCheck(name, check),
    add: (runnable) => host.add(runnable),
  };
}

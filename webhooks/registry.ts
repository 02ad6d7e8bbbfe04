/**
 * Where plugins' webhook declarations (`ctx.webhooks(kind).default().validate()`, declared in
 * core/webhook.ts) are registered: a defaulter and/or a validator per kind. Paths follow
 * Kubebuilder's pattern (`/mutate-webapp-example-com-v1-webapp`, `/validate-...`).
 */
// Values from modules rather than core/runtime.ts (types are erased), here and in the other modules
// the admission thread loads: the runtime entry also loads the manager (express, inversify).

import { type Kind, kindId } from "../core/kinds.ts";
import type {
  CustomKind,
  Defaulter,
  KubeObject,
  Operation,
  Validator,
  WebhookOptions,
  WebhookRegistrar,
} from "../core/runtime.ts";

/** One registered webhook. */
export interface WebhookEntry {
  type: "mutating" | "validating";
  path: string;
  /** Webhook name in the configuration (fully qualified), e.g. `mwebapp.webapp.example.com`. */
  name: string;
  kind: Kind;
  operations: readonly Operation[];
  defaulter?: Defaulter<KubeObject>;
  validator?: Validator<KubeObject>;
}

/** Kubebuilder's path for a kind: `/<mutate|validate>-<group with dashes>-<version>-<kind lower-case>`. */
export function webhookPath(type: "mutating" | "validating", kind: Kind): string {
  const group = kind.group ? kind.group.replace(/\./g, "-") : "core";
  return `/${type === "mutating" ? "mutate" : "validate"}-${group}-${kind.version}-${kind.kind.toLowerCase()}`;
}

/** True for kinds defined with a zod schema. */
export function isCustomKind(kind: Kind): kind is CustomKind {
  return "definition" in kind;
}

const DEFAULT_OPERATIONS: readonly Operation[] = ["CREATE", "UPDATE"];

/** See the module comment. One registry per manager, shared by all plugins. */
export class WebhookRegistry implements WebhookRegistrar {
  private readonly byPath = new Map<string, WebhookEntry>();
  private readonly finalizers = new Map<string, string[]>();

  private add(type: WebhookEntry["type"], kind: Kind, options: WebhookOptions, handler: Partial<WebhookEntry>): void {
    const path = webhookPath(type, kind);
    if (this.byPath.has(path)) throw new Error(`a ${type} webhook for ${kind.kind} is already registered (${path})`);
    if (type === "mutating" && options.operations?.includes("DELETE")) {
      throw new Error(`default(${kind.kind}): a defaulting webhook cannot run on DELETE (there is nothing to default)`);
    }
    const name = `${type === "mutating" ? "m" : "v"}${kind.kind.toLowerCase()}.${kind.group || "core"}`;
    this.byPath.set(path, { type, path, name, kind, operations: options.operations ?? DEFAULT_OPERATIONS, ...handler });
  }

  /** Registers the defaulting (mutating) webhook of a kind. */
  defaulter(kind: Kind, fn: Defaulter<KubeObject> | undefined, options: WebhookOptions = {}): void {
    this.add("mutating", kind, options, fn ? { defaulter: fn } : {});
  }

  /** Registers the validating webhook of a kind. */
  validator(kind: Kind, fn: Validator<KubeObject> | undefined, options: WebhookOptions = {}): void {
    this.add("validating", kind, options, fn ? { validator: fn } : {});
  }

  /** Registers a controller's finalizer on a kind, added at admission on CREATE (see WebhookRegistrar). */
  finalizer(kind: Kind, name: string): void {
    const names = this.finalizers.get(kindId(kind)) ?? [];
    if (!names.includes(name)) this.finalizers.set(kindId(kind), [...names, name]);
  }

  /** The finalizers admission adds to new objects of a kind. */
  finalizersOf(kind: Kind): readonly string[] {
    return this.finalizers.get(kindId(kind)) ?? [];
  }

  /** Every registered webhook. */
  entries(): WebhookEntry[] {
    return [...this.byPath.values()];
  }

  /** The webhook serving `path`, if any. */
  get(path: string): WebhookEntry | undefined {
    return this.byPath.get(path);
  }
}

/**
 * Where plugins register admission handlers: a defaulter and/or a validator per kind. Paths follow
 * Kubebuilder's pattern (`/mutate-webapp-example-com-v1-webapp`, `/validate-...`).
 *
 * For kinds defined from a zod schema (`defineKind`), the schema itself is applied first: the
 * defaulting webhook fills in the schema's defaults (only what is missing) and both webhooks deny a
 * spec the schema rejects, naming every bad field at once. Plugin handlers add what a schema cannot
 * say (immutable fields, cross-object rules).
 */
import type { Client, CustomKind, Kind, KubeObject } from "../core/index.ts";
import { extensionKey } from "../core/index.ts";
import type { AdmissionRequest, FieldCause } from "./review.ts";

/** What a handler knows besides the object. */
export interface AdmissionContext<T extends KubeObject> {
  operation: "CREATE" | "UPDATE" | "DELETE" | "CONNECT";
  /** The stored object on UPDATE and DELETE. */
  oldObject: T | undefined;
  /** Cached reads (e.g. to check another object claims the same thing). */
  client: Client;
  request: AdmissionRequest;
}

/** Changes `obj` (a private copy) in place or returns a new object; only what it sets is patched. */
export type Defaulter<T extends KubeObject> = (obj: T, ctx: AdmissionContext<T>) => T | undefined | Promise<T | undefined>;

/** What a validator found: bad fields (deny) and warnings (shown by kubectl, allowed). */
export interface ValidationResult {
  causes?: FieldCause[];
  warnings?: string[];
}

/** Checks an object; returns the problems found (none: allowed). */
export type Validator<T extends KubeObject> = (obj: T, ctx: AdmissionContext<T>) => ValidationResult | Promise<ValidationResult>;

type Operation = "CREATE" | "UPDATE" | "DELETE";

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

/** See the module comment. One registry per manager, shared by all plugins. */
export class WebhookRegistry {
  private readonly byPath = new Map<string, WebhookEntry>();

  private add(entry: WebhookEntry): this {
    if (this.byPath.has(entry.path))
      throw new Error(`a ${entry.type} webhook for ${entry.kind.kind} is already registered (${entry.path})`);
    this.byPath.set(entry.path, entry);
    return this;
  }

  /** Registers the defaulting (mutating) webhook of a kind. */
  defaulter<T extends KubeObject>(kind: Kind<T>, fn?: Defaulter<T>, options: { operations?: readonly Operation[] } = {}): this {
    const group = kind.group || "core";
    return this.add({
      type: "mutating",
      path: webhookPath("mutating", kind),
      name: `m${kind.kind.toLowerCase()}.${group}`,
      kind,
      operations: options.operations ?? ["CREATE", "UPDATE"],
      ...(fn ? { defaulter: fn as unknown as Defaulter<KubeObject> } : {}),
    });
  }

  /** Registers the validating webhook of a kind. */
  validator<T extends KubeObject>(kind: Kind<T>, fn?: Validator<T>, options: { operations?: readonly Operation[] } = {}): this {
    const group = kind.group || "core";
    return this.add({
      type: "validating",
      path: webhookPath("validating", kind),
      name: `v${kind.kind.toLowerCase()}.${group}`,
      kind,
      operations: options.operations ?? ["CREATE", "UPDATE"],
      ...(fn ? { validator: fn as unknown as Validator<KubeObject> } : {}),
    });
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

/** The extension key plugins use: `ctx.extension(WEBHOOKS).defaulter(kind, fn).validator(kind, fn)`. */
export const WEBHOOKS = extensionKey<WebhookRegistry>("webhooks");

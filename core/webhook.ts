/**
 * Admission webhooks as plugins declare them. Core declares the interface; `webhooks/` implements
 * it (the HTTPS server, AdmissionReview decoding, certificates) and the composition root connects the
 * two, so core imports nothing of webhooks.
 *
 * For kinds defined with `defineKind`, the schema runs first: the defaulting webhook fills in the
 * schema's defaults and both webhooks deny a spec the schema rejects, naming every bad field. A
 * plugin's handlers add what a schema cannot say (immutable fields, rules across objects).
 */
import type { Client } from "./client/client.ts";
import type { Kind } from "./kinds.ts";
import type { KubeObject } from "./object.ts";

/** An operation a webhook can be called for. */
export type Operation = "CREATE" | "UPDATE" | "DELETE";

/** What a handler knows besides the object. */
export interface AdmissionContext<T> {
  operation: Operation | "CONNECT";
  /** The stored object on UPDATE and DELETE. */
  oldObject: T | undefined;
  /** Cached reads (e.g. whether another object claims the same thing). */
  client: Client;
  /** Who asks. */
  userInfo: { username?: string | undefined; groups?: string[] | undefined };
  /** True for a server-side dry run: no side effects. */
  dryRun: boolean;
}

/** One bad field, as in a Kubernetes `Status.details.causes` entry. */
export interface FieldCause {
  /** Dotted path, e.g. `spec.replicas`. */
  field: string;
  /** What is wrong and what is allowed. */
  message: string;
  /** `FieldValueInvalid` (default), `FieldValueRequired`, `FieldValueNotSupported`, `FieldValueForbidden`, ... */
  reason?: string;
}

/** What a handler found: bad fields (deny; validators only) and warnings (kubectl shows them). */
export interface ValidationResult {
  causes?: FieldCause[];
  warnings?: string[];
}

/**
 * Sets defaults on `obj` (a private copy, changed in place); only what it changes is patched. May
 * return warnings for the client.
 */
export type Defaulter<T> = (
  obj: T,
  ctx: AdmissionContext<T>,
  // biome-ignore lint/suspicious/noConfusingVoidType: lets a defaulter that only sets fields return nothing.
) => void | { warnings?: string[] } | Promise<void | { warnings?: string[] }>;

/**
 * Checks an object; returns the problems found (none: allowed). On DELETE, `obj` is the object being
 * deleted (the same as `ctx.oldObject`) and the schema is not applied.
 */
export type Validator<T> = (obj: T, ctx: AdmissionContext<T>) => ValidationResult | Promise<ValidationResult>;

/** Options of a webhook. */
export interface WebhookOptions {
  /** Default CREATE and UPDATE; add DELETE to validate deletions. */
  operations?: readonly Operation[];
}

/** The webhooks of one kind: `ctx.webhooks(kind).default(fn?).validate(fn?)`. */
export interface WebhookBuilder<T> {
  /** The defaulting (mutating) webhook: schema defaults, then `fn`. */
  default(fn?: Defaulter<T>, options?: WebhookOptions): WebhookBuilder<T>;
  /** The validating webhook: schema checks, then `fn`. */
  validate(fn?: Validator<T>, options?: WebhookOptions): WebhookBuilder<T>;
}

/** What the composition root hands the manager so plugins can declare webhooks (implemented in webhooks/). */
export interface WebhookRegistrar {
  defaulter(kind: Kind, fn: Defaulter<KubeObject> | undefined, options: WebhookOptions): void;
  validator(kind: Kind, fn: Validator<KubeObject> | undefined, options: WebhookOptions): void;
  /**
   * A controller's finalizer on a kind: the defaulting webhook adds it to objects it admits on
   * CREATE, so the controller does not patch every new object (one write and two webhook calls less).
   */
  finalizer(kind: Kind, name: string): void;
}

/** The builder over a registrar (one per `ctx.webhooks(kind)` call). */
export function webhookBuilder<T>(registrar: WebhookRegistrar, kind: Kind): WebhookBuilder<T> {
  const builder: WebhookBuilder<T> = {
    default(fn, options = {}) {
      registrar.defaulter(kind, fn as Defaulter<KubeObject> | undefined, options);
      return builder;
    },
    validate(fn, options = {}) {
      registrar.validator(kind, fn as Validator<KubeObject> | undefined, options);
      return builder;
    },
  };
  return builder;
}

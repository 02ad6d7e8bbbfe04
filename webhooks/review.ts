/**
 * AdmissionReview v1: the request schema (checked with zod at the boundary), responses, field
 * causes in the API server's own style, and the JSON Patch a defaulter's change becomes.
 */
import { z } from "zod";
import { jsonEqual } from "../core/helpers/status.ts";
import type { FieldCause } from "../core/runtime.ts";

export type { FieldCause };

const groupVersionKind = z.object({ group: z.string(), version: z.string(), kind: z.string() });
const groupVersionResource = z.object({ group: z.string(), version: z.string(), resource: z.string() });

/** True for a JSON object (not null, not an array). */
export const isJsonObject = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * An object carried in a review: checked to be a JSON object and passed on as parsed. Not
 * `z.record`, which copies every key of every object on the admission hot path (its cost is in
 * bench/README.md); the webhook's own schema then checks the spec.
 */
const kubeObject = z.custom<Record<string, unknown>>(isJsonObject, {
  error: (issue) => `must be a JSON object, got ${Array.isArray(issue.input) ? "an array" : typeof issue.input}`,
});

/** The parts of an AdmissionReview v1 request kubeplug reads; unknown fields are allowed. */
export const admissionReviewSchema = z.object({
  apiVersion: z.literal("admission.k8s.io/v1", { error: 'apiVersion must be "admission.k8s.io/v1"' }),
  kind: z.literal("AdmissionReview", { error: 'kind must be "AdmissionReview"' }),
  request: z.object({
    uid: z.string().min(1, "request.uid is required"),
    kind: groupVersionKind,
    resource: groupVersionResource,
    subResource: z.string().optional(),
    name: z.string().optional(),
    namespace: z.string().optional(),
    operation: z.enum(["CREATE", "UPDATE", "DELETE", "CONNECT"]),
    userInfo: z
      .object({ username: z.string().optional(), groups: z.array(z.string()).optional() })
      .passthrough()
      .optional(),
    object: kubeObject.nullable().optional(),
    oldObject: kubeObject.nullable().optional(),
    dryRun: z.boolean().optional(),
  }),
});

export type AdmissionReview = z.infer<typeof admissionReviewSchema>;
export type AdmissionRequest = AdmissionReview["request"];

/** The response part of an AdmissionReview. */
export interface AdmissionResponse {
  uid: string;
  allowed: boolean;
  status?: {
    code: number;
    reason?: string;
    message: string;
    details?: { name?: string; group?: string; kind?: string; causes: { field: string; message: string; reason: string }[] };
  };
  patch?: string;
  patchType?: "JSONPatch";
  warnings?: string[];
}

/** A review carrying a response. */
export function reviewResponse(response: AdmissionResponse): Record<string, unknown> {
  return { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response };
}

/**
 * A denial whose message reads like the API server's own validation errors:
 * `WebApp.webapp.example.com "web" is invalid: [spec.replicas: Invalid value: 11: must be between 1 and 10, ...]`.
 */
export function denial(request: AdmissionRequest, causes: FieldCause[], warnings: string[] = []): AdmissionResponse {
  const object = (request.object ?? request.oldObject ?? {}) as { metadata?: { name?: string } };
  const name = request.name || object.metadata?.name || "";
  const gk = request.kind.group ? `${request.kind.kind}.${request.kind.group}` : request.kind.kind;
  const parts = causes.map((c) => `${c.field}: ${c.message}`);
  const message = `${gk} "${name}" is invalid: ${parts.length === 1 ? parts[0] : `[${parts.join(", ")}]`}`;
  return {
    uid: request.uid,
    allowed: false,
    status: {
      code: 422,
      reason: "Invalid",
      message,
      details: {
        name,
        group: request.kind.group,
        kind: request.kind.kind,
        causes: causes.map((c) => ({ field: c.field, message: c.message, reason: c.reason ?? "FieldValueInvalid" })),
      },
    },
    ...(warnings.length ? { warnings } : {}),
  };
}

/** The longest rendering of a value in a field error; longer values are cut (strings) or named by type. */
const SHOWN_MAX_CHARS = 256;

/**
 * A value as shown in a field error: JSON of at most SHOWN_MAX_CHARS characters; an object or array
 * whose JSON would be longer is shown by its type, as the API server shows non-scalar values
 * (`"object"`), and a longer string is cut. Rendered by hand within that budget rather than by
 * JSON.stringify, whose cost grows with the whole value: a 20,000-deep object in a review took
 * 100 ms of the admission thread per field error (a worker's 4 MiB stack lets it recurse that deep
 * before it gives up), enough for a storm of such reviews to hold every other connection.
 */
export function shownValue(value: unknown): string {
  if (value !== null && typeof value === "object") {
    return render(value, { left: SHOWN_MAX_CHARS }) ?? (Array.isArray(value) ? '"array"' : '"object"');
  }
  const text = JSON.stringify(value) ?? String(value);
  return text.length <= SHOWN_MAX_CHARS
    ? text
    : `${text.slice(0, SHOWN_MAX_CHARS)}... (${text.length - SHOWN_MAX_CHARS} more characters)`;
}

/** JSON of `value` if it fits in `budget.left` characters (spent as it goes), else undefined. */
function render(value: unknown, budget: { left: number }): string | undefined {
  const spend = (text: string) => {
    budget.left -= text.length;
    return budget.left >= 0 ? text : undefined;
  };
  if (value === null || typeof value !== "object") {
    // Cut a long scalar before it is quoted, so a huge string costs no more than the budget.
    if (typeof value === "string" && value.length > budget.left) return undefined;
    return spend(JSON.stringify(value) ?? "null");
  }
  const array = Array.isArray(value);
  if (spend(array ? "[" : "{") === undefined) return undefined;
  const parts: string[] = [];
  for (const key in value) {
    if (!Object.hasOwn(value, key)) continue;
    if (parts.length > 0 && spend(",") === undefined) return undefined;
    const name = array ? "" : key.length > budget.left ? undefined : spend(`${JSON.stringify(key)}:`);
    if (name === undefined) return undefined;
    const item = render((value as Record<string, unknown>)[key], budget);
    if (item === undefined) return undefined;
    parts.push(name + item);
  }
  return spend(array ? "]" : "}") === undefined ? undefined : (array ? "[" : "{") + parts.join(",") + (array ? "]" : "}");
}

/** Turns zod issues into field causes under `prefix` (e.g. "spec"), naming the value and what is allowed. */
export function causesFromZod(error: z.ZodError, prefix: string, value: unknown): FieldCause[] {
  return error.issues.map((issue) => {
    const field = [prefix, ...issue.path.map(String)].filter(Boolean).join(".");
    const actual = issue.path.reduce<unknown>(
      (v, key) => (v && typeof v === "object" ? (v as Record<PropertyKey, unknown>)[key as PropertyKey] : undefined),
      value,
    );
    const missing = actual === undefined;
    const reason = missing
      ? "FieldValueRequired"
      : issue.code === "invalid_value"
        ? "FieldValueNotSupported"
        : "FieldValueInvalid";
    const shown = missing ? "Required value" : `Invalid value: ${shownValue(actual)}`;
    return { field, reason, message: `${shown}: ${issue.message}` };
  });
}

const escapePointer = (key: string) => key.replace(/~/g, "~0").replace(/\//g, "~1");

/** A JSON Patch operation (RFC 6902). */
export type PatchOp = { op: "add" | "replace"; path: string; value: unknown } | { op: "remove"; path: string };

/**
 * The JSON Patch that turns `before` into `after`: objects are compared key by key, anything else
 * (arrays included) is replaced whole. A defaulter that only fills in what is missing yields only
 * `add` operations.
 */
export function jsonPatch(before: unknown, after: unknown, path = ""): PatchOp[] {
  if (jsonEqual(before, after)) return [];
  if (!isJsonObject(before) || !isJsonObject(after)) {
    return before === undefined ? [{ op: "add", path, value: after }] : [{ op: "replace", path, value: after }];
  }
  const ops: PatchOp[] = [];
  for (const key of Object.keys(before)) {
    if (!(key in after) || after[key] === undefined) ops.push({ op: "remove", path: `${path}/${escapePointer(key)}` });
  }
  for (const [key, value] of Object.entries(after)) {
    if (value === undefined) continue;
    const child = `${path}/${escapePointer(key)}`;
    if (!(key in before) || before[key] === undefined) ops.push({ op: "add", path: child, value });
    else ops.push(...jsonPatch(before[key], value, child));
  }
  return ops;
}

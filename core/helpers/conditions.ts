/**
 * Status conditions as the Kubernetes API conventions define them (apimachinery's `metav1.Condition`
 * and `meta.SetStatusCondition`).
 *
 * Guarantees: `setCondition` never changes its input (which may be frozen, from the cache) and
 * changes `lastTransitionTime` only when `status` changes, so recomputing a status from the same
 * facts gives an equal status and no write (see status.ts). Times are RFC 3339 at whole seconds,
 * the form `metav1.Time` serialises to, so a value read back from the API compares equal.
 */
import { z } from "zod";

const TYPE = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$/;
const REASON = /^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$/;

/** One condition, validated as `metav1.Condition` is (same patterns and bounds). */
export const conditionSchema = z.object({
  /** CamelCase kind of condition, e.g. `Ready`; optionally prefixed with a DNS subdomain and `/`. */
  type: z.string().max(316).regex(TYPE, "must be CamelCase letters, digits, '-', '_' or '.', optionally prefixed by 'domain/'"),
  status: z.enum(["True", "False", "Unknown"]),
  /** The `.metadata.generation` the condition was computed from. */
  observedGeneration: z.number().int().min(0).optional(),
  /** When `status` last changed (RFC 3339). */
  lastTransitionTime: z.iso.datetime({ offset: true }),
  /** CamelCase machine-readable reason for the last transition. */
  reason: z.string().min(1).max(1024).regex(REASON, "must be CamelCase: a letter, then letters, digits, '_', ',' or ':'"),
  /** Human-readable details; may be empty. */
  message: z.string().max(32768),
});

/** A status condition. */
export type Condition = z.infer<typeof conditionSchema>;

/** What a reconciler says about one condition; the time is filled in by {@link setCondition}. */
export type ConditionUpdate = Omit<Condition, "lastTransitionTime">;

/** `date` as `metav1.Time` writes it: RFC 3339 in UTC, whole seconds. */
function rfc3339(date: Date): string {
  return `${date.toISOString().slice(0, 19)}Z`;
}

/**
 * A new array with the condition of `update.type` set: appended when absent, otherwise replaced in
 * place keeping its `lastTransitionTime` unless `status` changed. `observedGeneration` is taken from
 * `update` (left out when `update` has none). Throws an Error naming the field when `update` is invalid.
 */
export function setCondition(
  conditions: readonly Condition[] | undefined,
  update: ConditionUpdate,
  now: Date = new Date(),
): Condition[] {
  const list = conditions ?? [];
  const existing = list.find((c) => c.type === update.type);
  const lastTransitionTime = existing && existing.status === update.status ? existing.lastTransitionTime : rfc3339(now);
  const candidate: Condition = {
    type: update.type,
    status: update.status,
    ...(update.observedGeneration !== undefined ? { observedGeneration: update.observedGeneration } : {}),
    lastTransitionTime,
    reason: update.reason,
    message: update.message,
  };
  const parsed = conditionSchema.safeParse(candidate);
  if (!parsed.success) throw new Error(`invalid condition "${update.type}":\n${z.prettifyError(parsed.error)}`);
  if (!existing) return [...list.map((c) => ({ ...c })), candidate];
  return list.map((c) => (c === existing ? candidate : { ...c }));
}

/** The condition of this type, if present. */
export function findCondition(conditions: readonly Condition[] | undefined, type: string): Condition | undefined {
  return conditions?.find((c) => c.type === type);
}

/** True when the condition of this type is present with status "True". */
export function isConditionTrue(conditions: readonly Condition[] | undefined, type: string): boolean {
  return findCondition(conditions, type)?.status === "True";
}

/** What a reconciler says about one condition: its status (true, false or "Unknown"), reason and message. */
export interface ConditionState {
  status: boolean | "Unknown";
  reason: string;
  message: string;
}

/**
 * The conditions of `obj` with each condition in `updates` set (see {@link setCondition}) and its
 * `observedGeneration` set to the object's generation:
 * `withConditions(app, { Available: { status: true, reason: "MinimumReplicasAvailable", message } })`.
 */
export function withConditions(
  obj: { metadata: { generation?: number | undefined }; status?: { conditions?: readonly Condition[] | undefined } | undefined },
  updates: Record<string, ConditionState>,
  now: Date = new Date(),
): Condition[] {
  let conditions: Condition[] = [...(obj.status?.conditions ?? [])];
  for (const [type, { status, reason, message }] of Object.entries(updates)) {
    const value = status === "Unknown" ? status : status ? "True" : "False";
    const update = { type, status: value, reason, message } as const;
    const generation = obj.metadata.generation;
    conditions = setCondition(conditions, generation === undefined ? update : { ...update, observedGeneration: generation }, now);
  }
  return conditions;
}

/**
 * Custom kinds defined by a zod schema, and the CustomResourceDefinition generated from it.
 *
 * One schema is the source of truth: the TypeScript type (`z.infer`), the CRD's openAPIV3Schema
 * (defaults, bounds, enums, patterns, required fields, descriptions), the admission webhooks'
 * validation and the printer columns all come from it, so they cannot disagree.
 */
import { z } from "zod";
import { type Kind, kindOf } from "./kinds.ts";
import type { KubeObject } from "./object.ts";

/** A printer column (`kubectl get` output). */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** What defines a custom kind. */
export interface CustomKindDefinition<Spec extends z.ZodType, Status extends z.ZodType> {
  group: string;
  version: string;
  kind: string;
  /** Default: lower-case kind + "s". */
  plural?: string;
  shortNames?: readonly string[];
  categories?: readonly string[];
  scope: "Namespaced" | "Cluster";
  /** What the kind is, for `kubectl explain`. */
  description: string;
  spec: Spec;
  status: Status;
  printerColumns?: readonly PrinterColumn[];
}

/** An object of a custom kind. */
export interface CustomObject<S, St> extends KubeObject {
  spec: S;
  status?: St;
}

/** A kind defined from zod schemas; `schema` validates whole objects' `spec`. */
export interface CustomKind<S = unknown, St = unknown> extends Kind<CustomObject<S, St>> {
  readonly definition: CustomKindDefinition<z.ZodType<S>, z.ZodType<St>>;
  /** Validates and defaults a spec; see zod's safeParse. */
  parseSpec(spec: unknown): z.ZodSafeParseResult<S>;
}

/** The TypeScript type of a custom kind's objects. */
export type ObjectOfKind<K> = K extends CustomKind<infer S, infer St> ? CustomObject<S, St> : never;

/** Defines a custom kind; see the module comment. */
export function defineKind<Spec extends z.ZodType, Status extends z.ZodType>(
  def: CustomKindDefinition<Spec, Status>,
): CustomKind<z.output<Spec>, z.output<Status>> {
  const plural = def.plural ?? `${def.kind.toLowerCase()}s`;
  const base = kindOf<CustomObject<z.output<Spec>, z.output<Status>>>({
    group: def.group,
    version: def.version,
    kind: def.kind,
    plural,
    namespaced: def.scope === "Namespaced",
  });
  return Object.freeze({
    ...base,
    definition: { ...def, plural } as unknown as CustomKindDefinition<z.ZodType<z.output<Spec>>, z.ZodType<z.output<Status>>>,
    parseSpec: (spec: unknown) => def.spec.safeParse(spec) as z.ZodSafeParseResult<z.output<Spec>>,
  });
}

type JsonSchema = { [key: string]: unknown };

/**
 * Turns zod's JSON Schema into a Kubernetes structural schema: drops what CRDs reject or do not need
 * (`$schema`, `additionalProperties: false` beside `properties`, the safe-integer bounds zod adds,
 * the long date-time regex where `format: date-time` says it).
 */
function structural(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(structural);
  if (!node || typeof node !== "object") return node;
  const out: JsonSchema = {};
  for (const [key, value] of Object.entries(node as JsonSchema)) {
    if (key === "$schema" || key === "id") continue;
    if (key === "additionalProperties" && (value === false || "properties" in (node as JsonSchema))) continue;
    if ((key === "minimum" || key === "maximum") && Math.abs(value as number) >= Number.MAX_SAFE_INTEGER) continue;
    if (key === "pattern" && (node as JsonSchema).format === "date-time") continue;
    out[key] = structural(value);
  }
  return out;
}

/** The openAPIV3Schema of a zod schema (as input: defaulted fields are not required). */
export function openApiSchema(schema: z.ZodType): JsonSchema {
  return structural(z.toJSONSchema(schema, { target: "openapi-3.0", io: "input", unrepresentable: "any" })) as JsonSchema;
}

/** The CustomResourceDefinition (apiextensions.k8s.io/v1) of a custom kind. */
export function crdOf(kind: CustomKind): Record<string, unknown> {
  const d = kind.definition;
  const singular = d.kind.toLowerCase();
  return {
    apiVersion: "apiextensions.k8s.io/v1",
    kind: "CustomResourceDefinition",
    metadata: { name: `${kind.plural}.${d.group}` },
    spec: {
      group: d.group,
      scope: d.scope,
      names: {
        kind: d.kind,
        listKind: `${d.kind}List`,
        plural: kind.plural,
        singular,
        ...(d.shortNames?.length ? { shortNames: [...d.shortNames] } : {}),
        ...(d.categories?.length ? { categories: [...d.categories] } : {}),
      },
      versions: [
        {
          name: d.version,
          served: true,
          storage: true,
          subresources: { status: {} },
          ...(d.printerColumns?.length ? { additionalPrinterColumns: d.printerColumns.map((c) => ({ ...c })) } : {}),
          schema: {
            openAPIV3Schema: {
              type: "object",
              description: d.description,
              required: ["spec"],
              properties: {
                apiVersion: {
                  type: "string",
                  description: "APIVersion defines the versioned schema of this representation of an object.",
                },
                kind: {
                  type: "string",
                  description: "Kind is a string value representing the REST resource this object represents.",
                },
                metadata: { type: "object" },
                spec: openApiSchema(d.spec),
                status: openApiSchema(d.status),
              },
            },
          },
        },
      ],
    },
  };
}

/**
 * Custom kinds defined by a zod schema, and the CustomResourceDefinition generated from it.
 *
 * One schema is the source of truth: the TypeScript type (`z.infer`), the CRD's openAPIV3Schema
 * (defaults, bounds, enums, patterns, required fields, descriptions), the admission webhooks'
 * validation and the printer columns all come from it, so they cannot disagree.
 */
import { z } from "zod";
import { type Kind, kindOf } from "./kinds.ts";
import type { KubeObject, Named } from "./object.ts";

/** A printer column (`kubectl get` output). */
export interface PrinterColumn {
  name: string;
  type: "string" | "integer" | "number" | "boolean" | "date";
  jsonPath: string;
  description?: string;
  priority?: number;
}

/** What defines a custom kind. */
export interface CustomKindDefinition<
  Spec extends z.ZodType,
  Status extends z.ZodType,
  Scope extends "Namespaced" | "Cluster" = "Namespaced" | "Cluster",
> {
  group: string;
  version: string;
  kind: string;
  /** Default: {@link pluralOf} the kind. */
  plural?: string;
  shortNames?: readonly string[];
  categories?: readonly string[];
  scope: Scope;
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

/** A kind defined from zod schemas; `parseSpec` validates and defaults a `spec`. */
export interface CustomKind<S = unknown, St = unknown, N extends boolean = boolean> extends Kind<CustomObject<S, St>, N> {
  readonly definition: CustomKindDefinition<z.ZodType<S>, z.ZodType<St>>;
  /** Validates and defaults a spec; see zod's safeParse. */
  parseSpec(spec: unknown): z.ZodSafeParseResult<S>;
}

/** The TypeScript type of a custom kind's objects as stored (named, and namespaced when the kind is). */
export type ObjectOfKind<K> = K extends CustomKind<infer S, infer St, infer N> ? Named<CustomObject<S, St>, N> : never;

/** The lower-case plural of a kind as Kubebuilder makes it: Policy -> policies, Bus -> buses, WebApp -> webapps. */
export function pluralOf(kind: string): string {
  const k = kind.toLowerCase();
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  return `${k}s`;
}

/** Defines a custom kind; see the module comment. */
export function defineKind<Spec extends z.ZodType, Status extends z.ZodType, const Scope extends "Namespaced" | "Cluster">(
  def: CustomKindDefinition<Spec, Status, Scope>,
): CustomKind<z.output<Spec>, z.output<Status>, Scope extends "Namespaced" ? true : false> {
  const plural = def.plural ?? pluralOf(def.kind);
  const base = kindOf<CustomObject<z.output<Spec>, z.output<Status>>>({
    group: def.group,
    version: def.version,
    kind: def.kind,
    plural,
    namespaced: def.scope === "Namespaced",
  });
  // The scope's literal type is carried by the type parameter; at run time it is the boolean above.
  return Object.freeze({
    ...base,
    definition: { ...def, plural } as unknown as CustomKindDefinition<z.ZodType<z.output<Spec>>, z.ZodType<z.output<Status>>>,
    parseSpec: (spec: unknown) => def.spec.safeParse(spec) as z.ZodSafeParseResult<z.output<Spec>>,
  }) as unknown as CustomKind<z.output<Spec>, z.output<Status>, Scope extends "Namespaced" ? true : false>;
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

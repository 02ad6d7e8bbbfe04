/**
 * The fluent controller builder (controller-runtime's builder, Pepr's narrowed types):
 *
 *   mgr.controller("webapp")
 *     .for(WebAppKind, { predicates: [generationChanged()] })
 *     .owns(DeploymentKind)
 *     .watches(NamespaceKind, (ns) => [{ name: ns.metadata.labels?.tenant ?? "" }])
 *     .reconcile(reconcileWebApp);
 *
 * Each step returns a type that offers only the legal next steps, so a second `for()` or a missing
 * `reconcile()` does not compile. Mistakes only visible at run time (an empty name, a duplicate
 * controller, the same kind owned twice) are collected and reported together by `reconcile()`.
 */
import { type Kind, kindId } from "../kinds.ts";
import type { KubeObject } from "../object.ts";
import { type MapFn, mapToControllerOwner, mapToSelf, type Reconciler, type Source } from "./controller.ts";
import type { Predicate } from "./predicates.ts";
import type { RateLimiter } from "./ratelimiter.ts";

/** Options for a watched kind. */
export interface WatchOptions<T extends KubeObject> {
  predicates?: readonly Predicate<T>[];
}

/** Per-controller overrides of the manager's defaults. */
export interface ControllerSettings {
  maxConcurrentReconciles?: number;
  rateLimiter?: RateLimiter<string>;
}

/** What the builder hands to the manager when complete. */
export interface ControllerSpec {
  name: string;
  sources: Source[];
  reconcile: Reconciler;
  settings: ControllerSettings;
}

/** The first step: only `for()`. */
export interface ForStep {
  /** The kind this controller reconciles; its objects' keys are the requests. */
  for<T extends KubeObject>(kind: Kind<T>, options?: WatchOptions<T>): ControllerBuilder<T>;
}

/** After `for()`: add more sources, then `reconcile()`. */
export interface ControllerBuilder<T extends KubeObject> {
  /** Children of this kind wake their controller owner (a `T`). */
  owns<C extends KubeObject>(kind: Kind<C>, options?: WatchOptions<C>): ControllerBuilder<T>;
  /** Objects of this kind wake the requests `map` returns. */
  watches<W extends KubeObject>(kind: Kind<W>, map: MapFn<W>, options?: WatchOptions<W>): ControllerBuilder<T>;
  /** Overrides manager defaults for this controller. */
  withSettings(settings: ControllerSettings): ControllerBuilder<T>;
  /** Completes the controller; throws one error listing every mistake found. */
  reconcile(fn: Reconciler): void;
}

/** Starts a builder; `register` receives the finished spec. */
export function controllerBuilder(name: string, register: (spec: ControllerSpec) => string[]): ForStep {
  const mistakes: string[] = [];
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    mistakes.push(`controller name "${name}" must be lower-case alphanumerics, '-' or '.' (it labels metrics)`);
  }
  const sources: Source[] = [];
  const seen = new Set<string>();
  let settings: ControllerSettings = {};
  const addSource = (source: Source, what: string) => {
    const id = `${what}:${kindId(source.kind)}`;
    if (seen.has(id)) mistakes.push(`${what}(${source.kind.kind}) is declared twice`);
    seen.add(id);
    sources.push(source);
  };
  return {
    for<T extends KubeObject>(kind: Kind<T>, options: WatchOptions<T> = {}): ControllerBuilder<T> {
      addSource({ kind, predicates: options.predicates ?? [], map: mapToSelf } as unknown as Source, "for");
      const builder: ControllerBuilder<T> = {
        owns(child, opts = {}) {
          if (kindId(child) === kindId(kind)) mistakes.push(`owns(${child.kind}): a kind cannot own itself`);
          addSource(
            { kind: child, predicates: opts.predicates ?? [], map: mapToControllerOwner(kind) } as unknown as Source,
            "owns",
          );
          return builder;
        },
        watches(watched, map, opts = {}) {
          addSource({ kind: watched, predicates: opts.predicates ?? [], map } as unknown as Source, "watches");
          return builder;
        },
        withSettings(s) {
          if (
            s.maxConcurrentReconciles !== undefined &&
            !(Number.isInteger(s.maxConcurrentReconciles) && s.maxConcurrentReconciles > 0)
          ) {
            mistakes.push(`maxConcurrentReconciles must be a positive integer, got ${s.maxConcurrentReconciles}`);
          }
          settings = { ...settings, ...s };
          return builder;
        },
        reconcile(fn) {
          if (typeof fn !== "function") mistakes.push("reconcile() needs a function");
          if (mistakes.length === 0) mistakes.push(...register({ name, sources, reconcile: fn, settings }));
          if (mistakes.length > 0) throw new Error(`controller "${name}": ${mistakes.join("; ")}`);
        },
      };
      return builder;
    },
  };
}

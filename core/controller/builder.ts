/**
 * The fluent controller builder (controller-runtime's builder, Pepr's narrowed types):
 *
 *   ctx.controller("webapp")
 *     .for(WebAppKind, { predicates: [generationChanged()] })
 *     .owns(k8s.Deployment)
 *     .watches(k8s.Namespace, (ns) => [{ name: ns.metadata.labels?.tenant ?? "" }])
 *     .finalizer("webapp.example.com/finalizer", cleanup)
 *     .reconcile(reconcileWebApp);
 *
 * Each step returns a type that offers only the legal next steps, so a second `for()`, a second
 * `finalizer()` or a missing `reconcile()` does not compile. Mistakes only visible at run time (an
 * empty name, a duplicate controller, the same kind owned twice) are collected and reported together
 * by `reconcile()`. The declared kinds are also what the generated RBAC is derived from.
 */
import { type Kind, kindId } from "../kinds.ts";
import type { KubeObject, Named, ObjectKey } from "../object.ts";
import type { Predicate } from "./predicates.ts";
import type { RateLimiter } from "./ratelimiter.ts";
import type { ReconcileContext } from "./reconcile-context.ts";
import type { ReconcileResult } from "./result.ts";

/** Options for a watched kind. */
export interface WatchOptions<T extends KubeObject> {
  predicates?: readonly Predicate<T>[];
}

/** Per-controller overrides of the manager's defaults. */
export interface ControllerSettings {
  maxConcurrentReconciles?: number;
  rateLimiter?: RateLimiter<string>;
}

/** Maps a watched object to the keys of the objects it should wake (e.g. `[owner.metadata]`). */
export type MapFn<T extends KubeObject = KubeObject> = (obj: T) => readonly ObjectKey[] | Promise<readonly ObjectKey[]>;

/** A reconcile function: the object as cached in, an Action (or nothing) out; throw to retry with backoff. */
export type Reconciler<T extends KubeObject> = (obj: T, ctx: ReconcileContext<T>) => Promise<ReconcileResult>;

/** One watched kind of a controller and why it is watched (the RBAC it needs follows from `role`). */
export interface Source<T extends KubeObject = KubeObject> {
  readonly role: "for" | "owns" | "watches";
  readonly kind: Kind<T>;
  readonly predicates: readonly Predicate<T>[];
  /** Absent for `for` (an object wakes itself) and `owns` (a child wakes its controller owner). */
  readonly map?: MapFn<T>;
}

/** What the builder hands to the manager when complete. */
export interface ControllerSpec {
  name: string;
  kind: Kind;
  sources: Source[];
  reconcile: Reconciler<KubeObject>;
  finalizer?: { name: string; cleanup: Reconciler<KubeObject> };
  settings: ControllerSettings;
}

/** What `reconcile()` returns: work can be added from outside a watch (an external event, a timer). */
export interface ControllerHandle {
  /** Reconciles this object soon (deduplicated with pending work for the same key). */
  enqueue(key: ObjectKey): void;
}

/** The first step: only `for()`. */
export interface ForStep {
  /** The kind this controller reconciles; its objects' keys are the work items. */
  for<T extends KubeObject, N extends boolean>(
    kind: Kind<T, N>,
    options?: WatchOptions<Named<T, N>>,
  ): ControllerBuilder<Named<T, N>>;
}

/** The last step: `reconcile()`. */
export interface ReconcileStep<T extends KubeObject> {
  /** Completes the controller; throws one error listing every mistake found. */
  reconcile(fn: Reconciler<T>): ControllerHandle;
}

/** After `for()`: add more sources, a finalizer, then `reconcile()`. */
export interface ControllerBuilder<T extends KubeObject> extends ReconcileStep<T> {
  /** Children of this kind wake their controller owner (a `T`). */
  owns<C extends KubeObject, N extends boolean>(kind: Kind<C, N>, options?: WatchOptions<Named<C, N>>): ControllerBuilder<T>;
  /** Objects of this kind wake the objects `map` returns. */
  watches<W extends KubeObject, N extends boolean>(
    kind: Kind<W, N>,
    map: MapFn<Named<W, N>>,
    options?: WatchOptions<Named<W, N>>,
  ): ControllerBuilder<T>;
  /** Overrides manager defaults for this controller. */
  withSettings(settings: ControllerSettings): ControllerBuilder<T>;
  /**
   * The framework adds finalizer `name` to every object before reconciling it and, once the object
   * is being deleted, calls `cleanup` and removes the finalizer when it resolves (not when it returns
   * `Action.requeueAfter`, which means "not finished yet"); see core/helpers/finalizer.ts.
   */
  finalizer(name: string, cleanup: Reconciler<T>): ReconcileStep<T>;
}

/** Starts a builder; `register` receives the finished spec and returns mistakes and the handle. */
export function controllerBuilder(
  name: string,
  register: (spec: ControllerSpec) => { mistakes: string[]; handle: ControllerHandle },
): ForStep {
  const mistakes: string[] = [];
  if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(name)) {
    mistakes.push(`controller name "${name}" must be lower-case alphanumerics, '-' or '.' (it labels metrics)`);
  }
  const sources: Source[] = [];
  const seen = new Set<string>();
  let settings: ControllerSettings = {};
  let finalizer: ControllerSpec["finalizer"];
  const addSource = (source: Source) => {
    const id = `${source.role}:${kindId(source.kind)}`;
    if (seen.has(id)) mistakes.push(`${source.role}(${source.kind.kind}) is declared twice`);
    seen.add(id);
    sources.push(source);
  };
  const predicatesOf = (options: WatchOptions<never> | undefined) => (options?.predicates ?? []) as readonly Predicate[];
  return {
    for<T extends KubeObject, N extends boolean>(kind: Kind<T, N>, options?: WatchOptions<Named<T, N>>) {
      addSource({ role: "for", kind, predicates: predicatesOf(options) });
      const builder: ControllerBuilder<Named<T, N>> = {
        owns(child, opts) {
          if (kindId(child) === kindId(kind)) mistakes.push(`owns(${child.kind}): a kind cannot own itself`);
          addSource({ role: "owns", kind: child, predicates: predicatesOf(opts) });
          return builder;
        },
        watches(watched, map, opts) {
          if (typeof map !== "function") mistakes.push(`watches(${watched.kind}) needs a function mapping objects to keys`);
          addSource({ role: "watches", kind: watched, predicates: predicatesOf(opts), map: map as MapFn });
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
        finalizer(finalizerName, cleanup) {
          if (!/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?\/[-A-Za-z0-9_.]+$/.test(finalizerName)) {
            mistakes.push(`finalizer name "${finalizerName}" must be domain/name, e.g. ${kind.group || "example.com"}/cleanup`);
          }
          if (typeof cleanup !== "function") mistakes.push("finalizer() needs a cleanup function");
          finalizer = { name: finalizerName, cleanup: cleanup as unknown as Reconciler<KubeObject> };
          return builder;
        },
        reconcile(fn) {
          if (typeof fn !== "function") mistakes.push("reconcile() needs a function");
          let handle: ControllerHandle | undefined;
          if (mistakes.length === 0) {
            const registered = register({
              name,
              kind,
              sources,
              reconcile: fn as unknown as Reconciler<KubeObject>,
              ...(finalizer ? { finalizer } : {}),
              settings,
            });
            mistakes.push(...registered.mistakes);
            handle = registered.handle;
          }
          if (mistakes.length > 0 || !handle) throw new Error(`controller "${name}": ${mistakes.join("; ")}`);
          return handle;
        },
      };
      return builder;
    },
  };
}

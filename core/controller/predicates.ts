/**
 * Predicates filter watch events before they reach a controller's queue (controller-runtime's
 * `predicate` package). Each method is optional and defaults to letting the event through.
 */
import { jsonEqual } from "../helpers/status.ts";
import type { KubeObject } from "../object.ts";

/** A filter on create, update and delete events. */
export interface Predicate<T extends KubeObject = KubeObject> {
  create?(obj: T): boolean;
  update?(old: T, obj: T): boolean;
  delete?(obj: T): boolean;
}

/** Applies a predicate to one event. */
export function admits<T extends KubeObject>(p: Predicate<T>, event: "create" | "delete", obj: T): boolean;
export function admits<T extends KubeObject>(p: Predicate<T>, event: "update", old: T, obj: T): boolean;
export function admits<T extends KubeObject>(p: Predicate<T>, event: "create" | "update" | "delete", a: T, b?: T): boolean {
  if (event === "update") return p.update ? p.update(a, b as T) : true;
  const fn = p[event];
  return fn ? fn.call(p, a) : true;
}

const sameJson = (a: unknown, b: unknown) => jsonEqual(a ?? {}, b ?? {});

/**
 * Updates pass only when `metadata.generation` changed (spec changes, not status-only writes), or
 * when deletion starts (`deletionTimestamp` appears), so finalizers always get their cleanup.
 */
export function generationChanged<T extends KubeObject>(): Predicate<T> {
  return {
    update: (old, obj) =>
      old.metadata.generation !== obj.metadata.generation ||
      (!old.metadata.deletionTimestamp && !!obj.metadata.deletionTimestamp),
  };
}

/** Updates pass only when labels changed. */
export function labelsChanged<T extends KubeObject>(): Predicate<T> {
  return { update: (old, obj) => !sameJson(old.metadata.labels, obj.metadata.labels) };
}

/** Updates pass only when annotations changed. */
export function annotationsChanged<T extends KubeObject>(): Predicate<T> {
  return { update: (old, obj) => !sameJson(old.metadata.annotations, obj.metadata.annotations) };
}

/** Updates pass when the resourceVersion changed (drops resync-style no-op updates). */
export function resourceVersionChanged<T extends KubeObject>(): Predicate<T> {
  return { update: (old, obj) => old.metadata.resourceVersion !== obj.metadata.resourceVersion };
}

/** Passes an event only when every predicate does. */
export function and<T extends KubeObject>(...ps: Predicate<T>[]): Predicate<T> {
  return {
    create: (obj) => ps.every((p) => admits(p, "create", obj)),
    update: (old, obj) => ps.every((p) => admits(p, "update", old, obj)),
    delete: (obj) => ps.every((p) => admits(p, "delete", obj)),
  };
}

/** Passes an event when any predicate does. */
export function or<T extends KubeObject>(...ps: Predicate<T>[]): Predicate<T> {
  return {
    create: (obj) => ps.some((p) => admits(p, "create", obj)),
    update: (old, obj) => ps.some((p) => admits(p, "update", old, obj)),
    delete: (obj) => ps.some((p) => admits(p, "delete", obj)),
  };
}

/** Inverts a predicate. */
export function not<T extends KubeObject>(p: Predicate<T>): Predicate<T> {
  return {
    create: (obj) => !admits(p, "create", obj),
    update: (old, obj) => !admits(p, "update", old, obj),
    delete: (obj) => !admits(p, "delete", obj),
  };
}

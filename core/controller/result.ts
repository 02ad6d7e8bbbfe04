/**
 * What a reconcile returns, after kube-rs's `Action` (no deprecated "requeue" boolean):
 * `Action.awaitChange()` (or nothing) means done until something changes; `Action.requeueAfter(ms)`
 * runs it again after a fixed delay. A thrown error means a rate-limited retry with per-key
 * exponential backoff; a {@link TerminalError} is logged and not retried.
 */

/** The outcome of a successful reconcile. */
export type Action = { readonly type: "awaitChange" } | { readonly type: "requeueAfter"; readonly ms: number };

export const Action = {
  /** Done: reconcile again only when a watched object changes. */
  awaitChange(): Action {
    return AWAIT;
  },
  /** Reconcile again after `ms` milliseconds (and earlier if something changes). */
  requeueAfter(ms: number): Action {
    if (!Number.isFinite(ms) || ms < 0) throw new RangeError(`requeueAfter needs a non-negative number of ms, got ${ms}`);
    return { type: "requeueAfter", ms };
  },
} as const;

const AWAIT: Action = Object.freeze({ type: "awaitChange" });

/** An error retrying cannot fix (bad spec, missing permission by design): logged and counted, not requeued. */
export class TerminalError extends Error {
  override name = "TerminalError";
}

/** What a reconcile function may return (`void`: a function that returns nothing means awaitChange). */
// biome-ignore lint/suspicious/noConfusingVoidType: lets `async () => {}` be a reconciler.
export type ReconcileResult = Action | undefined | void;

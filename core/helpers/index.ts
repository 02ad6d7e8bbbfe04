/** Reconcile helpers: owner references, conditions, status writes and the finalizer helper. */
export {
  type Condition,
  type ConditionState,
  type ConditionUpdate,
  conditionSchema,
  findCondition,
  isConditionTrue,
  setCondition,
  withConditions,
} from "./conditions.ts";
export { createOrUpdate, type OperationResult } from "./create-or-update.ts";
export { type FinalizerEvent, finalizer } from "./finalizer.ts";
export { AlreadyOwnedError, controllerReference, isControlledBy, setControllerReference } from "./owner.ts";
export { jsonEqual, type WithStatus, WRITE_STATUS_ATTEMPTS, type WriteStatusResult, writeStatus } from "./status.ts";

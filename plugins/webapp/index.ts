/** The WebApp plugin: a WebApp becomes a Deployment and a Service, kept that way. */
import { definePlugin, generationChanged, k8s, type Predicate, type ValidationResult } from "../../core/index.ts";
import { type WebApp, WebAppKind } from "./api.ts";
import { drainPods, FINALIZER, reconcileWebApp } from "./reconciler.ts";

export { type WebApp, WebAppKind } from "./api.ts";

export const webAppPlugin = definePlugin({
  name: "webapp",
  kinds: [WebAppKind],
  // Deletion waits for the pods to go: read uncached, since caching every pod would cost memory.
  rbac: [{ kind: k8s.Pod, verbs: ["get", "list"] }],
  setup(ctx) {
    ctx
      .controller("webapp")
      .for(WebAppKind, { predicates: [generationChanged()] })
      .owns(k8s.Deployment, { predicates: [deploymentChanged] })
      .owns(k8s.Service)
      .finalizer(FINALIZER, drainPods)
      .reconcile(reconcileWebApp);
    // The schema defaults and validates; the validator adds what a schema cannot say.
    ctx.webhooks(WebAppKind).default().validate(validateWebApp);
  },
});

/**
 * The changes of an owned Deployment that concern its WebApp: what the reconciler keeps (the spec,
 * so `generation`, and the labels), what it reports (`availableReplicas`) and deletion. The
 * controller manager's other status writes (observedGeneration, replica counts, conditions: three
 * or four per rollout) would each wake a reconcile that changes nothing. Creates and deletes always
 * pass.
 */
const deploymentChanged: Predicate<k8s.Deployment> = {
  update: (old, d) =>
    old.metadata.generation !== d.metadata.generation ||
    old.status?.availableReplicas !== d.status?.availableReplicas ||
    JSON.stringify(old.metadata.labels ?? {}) !== JSON.stringify(d.metadata.labels ?? {}) ||
    JSON.stringify(old.metadata.ownerReferences ?? []) !== JSON.stringify(d.metadata.ownerReferences ?? []) ||
    (!old.metadata.deletionTimestamp && !!d.metadata.deletionTimestamp),
};

/** Warns (kubectl shows it) about images that make rollouts unpredictable. */
export function validateWebApp(app: WebApp): ValidationResult {
  const image = app.spec?.image ?? "";
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  if (image && !lastSegment.includes(":") && !image.includes("@")) {
    return {
      warnings: [`spec.image "${image}" has no tag: the node pulls ":latest", which changes under you; pin a tag or digest`],
    };
  }
  if (lastSegment.endsWith(":latest")) {
    return { warnings: [`spec.image "${image}" uses ":latest", which changes under you; pin a tag or digest`] };
  }
  return {};
}

export default webAppPlugin;

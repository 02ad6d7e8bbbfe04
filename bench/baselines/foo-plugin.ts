/**
 * sample-controller's job as a kubeplug plugin, for a like-for-like comparison: each Foo
 * (samplecontroller.k8s.io/v1alpha1, the shipped CRD without a status subresource) gets a Deployment
 * and its status written with a plain update, the same 2 writes sample-controller makes.
 * Usage: node foo-plugin.ts <kubeplug run flags>
 */
import { runManager } from "../../cli/run.ts";
import {
  Action,
  controllerReference,
  createOrUpdate,
  DeploymentKind,
  definePlugin,
  type KubeObject,
  kindOf,
  type ReconcileContext,
  type Request,
} from "../../core/index.ts";

interface Foo extends KubeObject {
  spec: { deploymentName: string; replicas: number };
  status?: { availableReplicas?: number };
}
const FooKind = kindOf<Foo>({
  group: "samplecontroller.k8s.io",
  version: "v1alpha1",
  kind: "Foo",
  plural: "foos",
  namespaced: true,
});

async function reconcileFoo(request: Request, ctx: ReconcileContext) {
  const foo = await ctx.client.get(FooKind, request.name, request.namespace);
  if (!foo) return Action.awaitChange();
  const labels = { app: "nginx", controller: foo.metadata.name as string };
  const { object } = await createOrUpdate(
    ctx.client,
    DeploymentKind,
    { name: foo.spec.deploymentName, namespace: request.namespace },
    (d) => {
      d.metadata.ownerReferences = [controllerReference(foo, FooKind)];
      const spec = d.spec ?? { selector: {}, template: {} };
      spec.replicas = foo.spec.replicas;
      spec.selector = { matchLabels: labels };
      spec.template.metadata = { ...spec.template.metadata, labels };
      const pod = spec.template.spec ?? { containers: [] };
      pod.containers = [{ ...pod.containers.find((c) => c.name === "nginx"), name: "nginx", image: "nginx:latest" }];
      spec.template.spec = pod;
      d.spec = spec;
    },
  );
  const available = object.status?.availableReplicas ?? 0;
  if (foo.status?.availableReplicas !== available) {
    await ctx.client.update(FooKind, { ...structuredClone(foo), status: { availableReplicas: available } });
  }
  return Action.awaitChange();
}

const fooPlugin = definePlugin({
  name: "foo",
  kinds: [],
  rbac: [],
  setup(ctx) {
    ctx.controller("foo").for(FooKind).owns(DeploymentKind).reconcile(reconcileFoo);
  },
});

process.exitCode = await runManager(["--webhook-bind-address", "0", ...process.argv.slice(2)], { plugins: [fooPlugin] });

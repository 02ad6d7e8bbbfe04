/**
 * sample-controller's job as a kubeplug plugin, for a like-for-like comparison: each Foo
 * (samplecontroller.k8s.io/v1alpha1, the shipped CRD without a status subresource) gets a Deployment
 * and its status written with a plain update, the same 2 writes sample-controller makes.
 * Usage: node foo-plugin.ts <kubeplug run flags>
 */
import { runManager } from "../../cli/run.ts";
import {
  Action,
  DeploymentKind,
  definePlugin,
  type KubeObject,
  kindOf,
  type Named,
  type ReconcileContext,
} from "../../core/runtime.ts";

interface Foo extends KubeObject {
  spec: { deploymentName: string; replicas: number };
  status?: { availableReplicas?: number };
}
const FooKind = kindOf<Foo, true>({
  group: "samplecontroller.k8s.io",
  version: "v1alpha1",
  kind: "Foo",
  plural: "foos",
  namespaced: true,
});

async function reconcileFoo(foo: Named<Foo, true>, ctx: ReconcileContext<Named<Foo, true>>) {
  const labels = { app: "nginx", controller: foo.metadata.name };
  const deployment = await ctx.own(DeploymentKind, foo.spec.deploymentName, (d) => {
    const spec = d.spec ?? { selector: {}, template: {} };
    spec.replicas = foo.spec.replicas;
    spec.selector = { matchLabels: labels };
    spec.template.metadata = { ...spec.template.metadata, labels };
    const pod = spec.template.spec ?? { containers: [] };
    pod.containers = [{ ...pod.containers.find((c) => c.name === "nginx"), name: "nginx", image: "nginx:latest" }];
    spec.template.spec = pod;
    d.spec = spec;
  });
  const available = deployment.status?.availableReplicas ?? 0;
  if (foo.status?.availableReplicas !== available) {
    await ctx.client.update(FooKind, { ...structuredClone(foo), status: { availableReplicas: available } });
  }
  return Action.awaitChange();
}

const fooPlugin = definePlugin({
  name: "foo",
  kinds: [],
  setup(ctx) {
    ctx.controller("foo").for(FooKind).owns(DeploymentKind).reconcile(reconcileFoo);
  },
});

process.exitCode = await runManager(["--webhook-bind-address", "0", ...process.argv.slice(2)], { plugins: [fooPlugin] });

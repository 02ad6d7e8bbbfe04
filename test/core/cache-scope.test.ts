/**
 * Cache scopes a plugin declares (`ctx.cache(kind, scope)`), against a real API server: a label
 * selector keeps other objects out of the cache and away from the controller, a transform shapes what
 * is stored, an uncached kind is read from the API server without an informer, a metadata-only kind
 * is listed and watched without its spec and read through its own typed handle; a second plugin that
 * declares another scope, or watches a kind another plugin scoped, fails setup naming both.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import {
  Action,
  CacheScopeError,
  ConfigMapKind,
  definePlugin,
  type Kind,
  type KubeObject,
  type Plugin,
  PluginLoadError,
  PodKind,
  RestClient,
  SecretKind,
} from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { createNamespace } from "../support/cluster.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

const NS = "cache-scope";
const BIG = "x".repeat(64 * 1024);

/** Caches only team=a ConfigMaps, keeping their `keep` key; Secrets uncached; records what it reconciles. */
function scopedPlugin(seen: Set<string>): Plugin {
  return definePlugin({
    name: "scoped",
    kinds: [],
    setup(ctx) {
      ctx.cache(ConfigMapKind, {
        labelSelector: "team=a",
        transform: (cm) => ({ ...cm, data: { keep: cm.data?.keep ?? "" } }),
      });
      ctx.cache(SecretKind, { uncached: true });
      ctx
        .controller("scoped-configmaps")
        .for(ConfigMapKind)
        .reconcile(async (cm) => {
          seen.add(cm.metadata.name);
          return Action.awaitChange();
        });
    },
  });
}

/** Caches Pods metadata only and reconciles them through the handle, recording what it saw. */
function metadataPlugin(seen: Map<string, KubeObject>, handle: { kind?: Kind<KubeObject, true> }): Plugin {
  return definePlugin({
    name: "pod-metadata",
    kinds: [],
    setup(ctx) {
      const PodMeta = ctx.cache(PodKind, { metadataOnly: true });
      handle.kind = PodMeta;
      ctx
        .controller("pod-metadata")
        .for(PodMeta)
        .reconcile(async (pod) => {
          seen.set(pod.metadata.name, pod);
          return Action.awaitChange();
        });
    },
  });
}

describe("cache scopes", () => {
  let cp: ControlPlane;
  let rest: RestClient;
  let tm: TestManager;
  const seen = new Set<string>();
  const pods = new Map<string, KubeObject>();
  const podMeta: { kind?: Kind<KubeObject, true> } = {};
  const configMap = (name: string, team: string) =>
    rest.request("POST", `/api/v1/namespaces/${NS}/configmaps`, {
      body: { metadata: { name, namespace: NS, labels: { team } }, data: { keep: `${name}-kept`, big: BIG } },
    });

  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
    await configMap("a-1", "a");
    await configMap("b-1", "b");
    await rest.request("POST", `/api/v1/namespaces/${NS}/secrets`, {
      body: { metadata: { name: "s-1", namespace: NS }, stringData: { token: "t" } },
    });
    // No controller manager here to create the ServiceAccount (and its token) the API server requires of Pods.
    await rest.request("POST", `/api/v1/namespaces/${NS}/serviceaccounts`, { body: { metadata: { name: "default" } } });
    await rest.request("POST", `/api/v1/namespaces/${NS}/pods`, {
      body: {
        metadata: { name: "p-1", namespace: NS, labels: { app: "p" } },
        spec: {
          automountServiceAccountToken: false,
          containers: [{ name: "c", image: "nginx:1.27", env: [{ name: "BIG", value: BIG }] }],
        },
      },
    });
    tm = await startTestManager(cp.kubeconfigPath, [scopedPlugin(seen), metadataPlugin(pods, podMeta)]);
  });
  after(async () => {
    await tm?.stop();
    await rest?.close();
    await cp?.stop();
  });

  it("a label selector keeps other objects out of the cache and away from the controller", async () => {
    await waitFor("a-1 reconciled", () => seen.has("a-1"), { timeoutMs: 60_000 });
    await configMap("b-2", "b");
    await configMap("a-2", "a");
    // a-2 was created after b-2: once it is seen, b-2's watch event has been passed over.
    await waitFor("a-2 reconciled", () => seen.has("a-2"), { timeoutMs: 60_000 });
    assert.deepEqual([...seen].sort(), ["a-1", "a-2"]);
    const client = tm.manager.client;
    assert.equal(await client.get(ConfigMapKind, "b-1", NS), undefined, "b-1 is outside the scope");
    assert.deepEqual((await client.list(ConfigMapKind, { namespace: NS })).map((c) => c.metadata.name).sort(), ["a-1", "a-2"]);
  });

  it("the transform shapes what is stored", async () => {
    const cached = await tm.manager.client.get(ConfigMapKind, "a-1", NS);
    assert.deepEqual(cached?.data, { keep: "a-1-kept" }, "only the kept key, not the 64 KiB one");
    assert.equal(cached?.metadata.labels?.team, "a");
  });

  it("an uncached kind is read from the API server, with no informer", async () => {
    const client = tm.manager.client;
    const secret = await client.get(SecretKind, "s-1", NS);
    assert.equal(secret?.data?.token, Buffer.from("t").toString("base64"));
    assert.equal(await client.get(SecretKind, "missing", NS), undefined);
    assert.ok((await client.list(SecretKind, { namespace: NS })).some((s) => s.metadata.name === "s-1"));
    assert.ok(
      !tm.manager.cache.informedKinds().some((k) => k.kind.kind === "Secret"),
      "no Secret informer: nothing cluster-wide is cached",
    );
    await assert.rejects(client.list(SecretKind, { index: { name: "by-x", value: "y" } }), CacheScopeError);
  });

  it("a metadata-only kind is cached without its spec, read through its handle, and not as the whole kind", async () => {
    const reconciled = await waitFor("p-1 reconciled", () => pods.get("p-1"), { timeoutMs: 60_000 });
    assert.equal(reconciled.metadata.labels?.app, "p");
    assert.equal("spec" in reconciled, false, "the API server sent metadata only (no transform dropped the spec)");
    assert.equal(reconciled.kind, "Pod", "stored under its real kind, not PartialObjectMetadata");
    const handle = podMeta.kind;
    assert.ok(handle?.metadataOnly);
    const client = tm.manager.client;
    assert.equal((await client.get(handle, "p-1", NS))?.metadata.uid, reconciled.metadata.uid);
    await assert.rejects(client.get(PodKind, "p-1", NS), /Pod is cached metadata only \(declared by plugin "pod-metadata"\)/);
    const whole = await client.reader.get(PodKind, "p-1", NS);
    assert.equal(whole?.spec?.containers[0]?.name, "c", "client.reader still reads whole objects");
    // A new Pod arrives through the metadata-only watch.
    await rest.request("POST", `/api/v1/namespaces/${NS}/pods`, {
      body: {
        metadata: { name: "p-2", namespace: NS },
        spec: { automountServiceAccountToken: false, containers: [{ name: "c", image: "nginx:1.27" }] },
      },
    });
    const watched = await waitFor("p-2 reconciled", () => pods.get("p-2"), { timeoutMs: 60_000 });
    assert.equal("spec" in watched, false);
  });

  it("a controller on the whole kind of a metadata-only scope fails setup, pointing at the handle", async () => {
    const whole = definePlugin({
      name: "whole-pods",
      kinds: [],
      setup(ctx) {
        ctx.cache(PodKind, { metadataOnly: true });
        ctx
          .controller("whole-pods")
          .for(PodKind)
          .reconcile(async () => Action.awaitChange());
      },
    });
    await fails([whole], /for\(Pod\): Pod is cached metadata only; for the kind ctx.cache returned/);
  });

  const fails = async (plugins: Plugin[], pattern: RegExp) => {
    await assert.rejects(startTestManager(cp.kubeconfigPath, plugins), (err: unknown) => {
      assert.ok(err instanceof PluginLoadError, String(err));
      assert.match(err.message, pattern);
      return true;
    });
  };

  it("a second plugin with another scope for the kind fails setup, naming both", async () => {
    const other = definePlugin({
      name: "other",
      kinds: [],
      setup(ctx) {
        ctx.cache(ConfigMapKind, { labelSelector: "team=b" });
      },
    });
    await fails(
      [scopedPlugin(new Set()), other],
      /plugin "other" failed to load: the cache of ConfigMap is scoped by plugin "scoped" \(labelSelector "team=a", a transform\); plugin "other" declares another scope \(labelSelector "team=b"\)/,
    );
  });

  it("a controller on a kind another plugin scoped fails setup; so does a scope after the kind is cached whole", async () => {
    const watcher = definePlugin({
      name: "watcher",
      kinds: [],
      setup(ctx) {
        ctx
          .controller("watcher")
          .for(ConfigMapKind)
          .reconcile(async () => Action.awaitChange());
      },
    });
    await fails([scopedPlugin(new Set()), watcher], /for\(ConfigMap\): the cache of ConfigMap is scoped by plugin "scoped"/);
    await fails(
      [watcher, scopedPlugin(new Set())],
      /plugin "scoped" scopes the cache of ConfigMap .* but ConfigMap is already cached whole/,
    );
  });
});

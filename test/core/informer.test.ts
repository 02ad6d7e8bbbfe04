/**
 * The informer against a real kube-apiserver: resuming broken watches, relisting after 410 Gone,
 * noticing silent watches, paged lists at scale, frozen objects, and the shared cache's merging.
 * Faults are injected with a TCP proxy between the informer and the API server.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual, promisify } from "node:util";
import {
  BY_CONTROLLER_UID,
  BY_NAMESPACE,
  type ConfigMap,
  ConfigMapKind,
  type EventHandler,
  Informer,
  type InformerOptions,
  isGone,
  type KubeObject,
  NamespaceKind,
  objectKey,
  RestClient,
  SecretKind,
  SharedCache,
} from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { createNamespace } from "../support/cluster.ts";
import { proxiedKubeConfig, startTcpProxy, type TcpProxy } from "../support/tcp-proxy.ts";
import { waitFor } from "../support/wait.ts";

const FAST: InformerOptions = { backoffMs: [50, 500] };

interface ObjectList {
  metadata: { resourceVersion: string; continue?: string };
  items: ConfigMap[];
}

/** Starts an informer; `stop()` aborts it and waits until it has stopped. */
function run(informer: { start(signal: AbortSignal): Promise<void> }): { stop(): Promise<void> } {
  const abort = new AbortController();
  const done = informer.start(abort.signal);
  return {
    stop: async () => {
      abort.abort();
      await done;
    },
  };
}

/** Records every handler call as `type name` (plus the data of updates), in order. */
function recorder() {
  const calls: string[] = [];
  const handler: EventHandler<ConfigMap> = {
    onAdd: (obj) => calls.push(`add ${obj.metadata.name}`),
    onUpdate: (old, obj) => calls.push(`update ${obj.metadata.name} ${old.data?.v}->${obj.data?.v}`),
    onDelete: (obj) => calls.push(`delete ${obj.metadata.name}`),
  };
  return { calls, handler };
}

const cmPath = (ns: string, name?: string) => `/api/v1/namespaces/${ns}/configmaps${name ? `/${name}` : ""}`;

async function createCm(rest: RestClient, ns: string, name: string, v = "1", extra: Partial<ConfigMap> = {}): Promise<ConfigMap> {
  return rest.request<ConfigMap>("POST", cmPath(ns), {
    body: { apiVersion: "v1", kind: "ConfigMap", ...extra, metadata: { ...extra.metadata, name }, data: { v } },
  });
}

async function updateCm(rest: RestClient, ns: string, name: string, v: string): Promise<void> {
  await rest.request("PATCH", cmPath(ns, name), {
    body: { data: { v } },
    contentType: "application/merge-patch+json",
  });
}

async function deleteCm(rest: RestClient, ns: string, name: string): Promise<void> {
  await rest.request("DELETE", cmPath(ns, name));
}

/** `namespace/name` -> resourceVersion of what the server holds. */
async function serverState(rest: RestClient, ns: string): Promise<Record<string, string>> {
  const list = await rest.request<ObjectList>("GET", cmPath(ns));
  return Object.fromEntries(list.items.map((o) => [objectKey(o), o.metadata.resourceVersion as string]));
}

/** `namespace/name` -> resourceVersion of what the informer's store holds. */
function storeState(informer: Informer<ConfigMap>): Record<string, string> {
  return Object.fromEntries(informer.store.list().map((o) => [objectKey(o), o.metadata.resourceVersion as string]));
}

/** Waits until the store holds exactly what the server holds, then asserts it (for a readable diff). */
async function converged(rest: RestClient, ns: string, informer: Informer<ConfigMap>, timeoutMs = 15_000): Promise<void> {
  let server: Record<string, string> = {};
  await waitFor(
    `the ${ns} informer's store to equal the server's list`,
    async () => {
      server = await serverState(rest, ns);
      return isDeepStrictEqual(storeState(informer), server);
    },
    { timeoutMs },
  ).catch(() => {});
  assert.deepEqual(storeState(informer), server);
}

/** A proxy in front of the control plane and a client that goes through it. */
async function throughProxy(cp: ControlPlane): Promise<{ proxy: TcpProxy; rest: RestClient; close(): Promise<void> }> {
  const proxy = await startTcpProxy("127.0.0.1", Number(new URL(cp.server).port));
  const rest = await RestClient.create(proxiedKubeConfig(cp.kubeConfig, proxy.port));
  return {
    proxy,
    rest,
    close: async () => {
      proxy.setMode("pass");
      await proxy.close();
      await rest.close();
    },
  };
}

/** True once a watch from `resourceVersion` is answered with 410 Gone (the version was compacted). */
async function expired(rest: RestClient, path: string, resourceVersion: string): Promise<boolean> {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), 3_000);
  try {
    for await (const event of rest.watch(path, { resourceVersion, timeoutSeconds: 1 }, abort.signal)) {
      if (event.type === "ERROR") return (event.object as { code?: number }).code === 410;
    }
    return false;
  } catch (err) {
    return isGone(err);
  } finally {
    clearTimeout(timer);
  }
}

describe("Informer on a plain control plane", () => {
  let cp: ControlPlane;
  let rest: RestClient;

  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
  });
  after(async () => {
    await rest?.close();
    await cp?.stop();
  });

  it("resumes a watch broken by the network from its resourceVersion, without relisting", async () => {
    const ns = "resume";
    await createNamespace(cp.kubeConfig, ns);
    for (const name of ["a", "b", "c"]) await createCm(rest, ns, name);
    const via = await throughProxy(cp);
    const informer = new Informer(via.rest, ConfigMapKind, { ...FAST, namespace: ns });
    const { calls, handler } = recorder();
    informer.addHandler(handler);
    const runner = run(informer);
    try {
      await informer.waitForSync();
      await converged(rest, ns, informer);
      // A change arriving proves the watch is open before it is broken.
      await createCm(rest, ns, "live");
      await waitFor("the watch to deliver", () => informer.store.get(`${ns}/live`));
      const watches = informer.stats.watches;
      calls.length = 0;

      // Round 1: the connection breaks and stays down while things change.
      assert.ok(via.proxy.connections() >= 1, "the informer talks through the proxy");
      via.proxy.setMode("refuse");
      via.proxy.cut();
      assert.equal(via.proxy.connections(), 0);
      await createCm(rest, ns, "d");
      await updateCm(rest, ns, "a", "2");
      await deleteCm(rest, ns, "b");
      assert.equal(informer.store.get(`${ns}/d`), undefined, "no connection, no news");
      via.proxy.setMode("pass");
      await converged(rest, ns, informer);
      assert.deepEqual(calls.sort(), ["add d", "delete b", "update a 1->2"]);

      // Round 2: cut while passing; it reconnects at once and misses nothing.
      calls.length = 0;
      via.proxy.cut();
      await updateCm(rest, ns, "c", "3");
      await deleteCm(rest, ns, "a");
      await createCm(rest, ns, "e");
      await converged(rest, ns, informer);
      assert.deepEqual(calls.sort(), ["add e", "delete a", "update c 1->3"]);

      assert.equal(informer.stats.lists, 1, "resumed from the resourceVersion: no relist");
      assert.equal(informer.stats.relists, 0);
      assert.ok(informer.stats.watches > watches, `watches grew from ${watches} to ${informer.stats.watches}`);
    } finally {
      await runner.stop();
      await via.close();
    }
  });

  it("notices a silent watch and restarts it", async () => {
    const ns = "stall";
    await createNamespace(cp.kubeConfig, ns);
    await createCm(rest, ns, "first");
    const via = await throughProxy(cp);
    const informer = new Informer(via.rest, ConfigMapKind, { ...FAST, namespace: ns, watchTimeoutSeconds: [1, 1] });
    const runner = run(informer);
    try {
      await informer.waitForSync();
      await createCm(rest, ns, "live");
      await waitFor("the watch to deliver", () => informer.store.get(`${ns}/live`));
      assert.equal(informer.stats.stalls, 0);

      via.proxy.setMode("blackhole");
      // The stall timer is timeoutSeconds + 5 s; give it room but not forever.
      await waitFor("a stalled watch to be noticed", () => informer.stats.stalls >= 1, { timeoutMs: 60_000 });
      await createCm(rest, ns, "after-stall");
      assert.equal(informer.store.get(`${ns}/after-stall`), undefined, "nothing gets through a blackhole");
      via.proxy.setMode("pass");
      await waitFor("the change made during the blackhole", () => informer.store.get(`${ns}/after-stall`));
      await converged(rest, ns, informer);
      assert.ok(informer.stats.stalls >= 1);
      assert.equal(informer.stats.lists, 1);
    } finally {
      await runner.stop();
      await via.close();
    }
  });

  it("hands out frozen objects without managedFields", async () => {
    const ns = "frozen";
    await createNamespace(cp.kubeConfig, ns);
    const ownerRef = { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: "uid-owner", controller: true };
    const extra = { metadata: { name: "", labels: { app: "x" }, ownerReferences: [ownerRef] } };
    const created = await createCm(rest, ns, "listed", "1", extra);
    assert.ok(created.metadata.managedFields?.length, "precondition: the server sends managedFields");
    const informer = new Informer(rest, ConfigMapKind, { ...FAST, namespace: ns });
    const handed: ConfigMap[] = [];
    informer.addHandler({ onAdd: (obj) => handed.push(obj) });
    const runner = run(informer);
    try {
      await informer.waitForSync();
      await createCm(rest, ns, "watched", "1", extra);
      await waitFor("the watched object", () => informer.store.get(`${ns}/watched`));

      for (const name of ["listed", "watched"]) {
        const obj = informer.store.get(`${ns}/${name}`) as ConfigMap;
        assert.ok(handed.includes(obj), `${name}: handlers get the stored object`);
        assert.equal(obj.metadata.managedFields, undefined, `${name}: managedFields stripped`);
        assert.equal(obj.apiVersion, "v1", `${name}: apiVersion filled in`);
        assert.equal(obj.kind, "ConfigMap", `${name}: kind filled in`);
        assert.ok(Object.isFrozen(obj));
        const data = obj.data as Record<string, string>;
        const labels = obj.metadata.labels as Record<string, string>;
        assert.throws(() => {
          data.v = "changed";
        }, TypeError);
        assert.throws(() => {
          labels.app = "changed";
        }, TypeError);
        assert.throws(() => {
          delete (obj.metadata as { name?: string }).name;
        }, TypeError);
        assert.throws(() => {
          (obj.metadata.ownerReferences as unknown[]).push(ownerRef);
        }, TypeError);
        assert.throws(() => {
          (obj as { data?: unknown }).data = {};
        }, TypeError);
        const again = informer.store.get(`${ns}/${name}`) as ConfigMap;
        assert.equal(again.data?.v, "1");
        assert.equal(again.metadata.labels?.app, "x");
        assert.equal(again.metadata.ownerReferences?.length, 1);
        assert.equal(again.metadata.name, name);
      }
      assert.deepEqual(
        informer.store
          .byIndex(BY_CONTROLLER_UID, "uid-owner")
          .map((o) => o.metadata.name)
          .sort(),
        ["listed", "watched"],
      );
    } finally {
      await runner.stop();
    }
  });

  it("SharedCache: one informer set per kind, one informer per watched namespace, merged reads", async () => {
    for (const ns of ["cache-a", "cache-b", "cache-c"]) {
      await createNamespace(cp.kubeConfig, ns);
      await createCm(rest, ns, "shared");
    }
    await createCm(rest, "cache-a", "only-a");
    const cache = new SharedCache(rest, { namespaces: ["cache-a", "cache-b"], informer: FAST });
    const configMaps = cache.informer(ConfigMapKind);
    assert.equal(cache.informer(ConfigMapKind), configMaps, "the same informers for the same kind");
    assert.deepEqual(configMaps.informers.map((i) => i.namespace).sort(), ["cache-a", "cache-b"]);
    const namespaces = cache.informer(NamespaceKind);
    assert.equal(cache.informer(NamespaceKind), namespaces);
    assert.equal(namespaces.informers.length, 1, "a cluster-scoped kind: one informer");
    assert.equal(namespaces.informers[0]?.namespace, undefined);
    assert.equal(cache.informedKinds().length, 2);

    const { calls, handler } = recorder();
    configMaps.addHandler(handler);
    const runner = run(cache);
    try {
      await cache.waitForSync();
      assert.ok(cache.hasSynced);
      const keys = (objs: KubeObject[]) => objs.map(objectKey).sort();
      assert.deepEqual(keys(configMaps.list()), ["cache-a/only-a", "cache-a/shared", "cache-b/shared"]);
      assert.deepEqual(keys(configMaps.list({ namespace: "cache-b" })), ["cache-b/shared"]);
      assert.deepEqual(keys(configMaps.list({ namespace: "cache-c" })), [], "an unwatched namespace");
      assert.deepEqual(keys(configMaps.list({ labels: { none: "x" } })), []);
      assert.equal(configMaps.get("shared", "cache-a")?.metadata.namespace, "cache-a");
      assert.equal(configMaps.get("shared", "cache-b")?.metadata.namespace, "cache-b");
      assert.equal(configMaps.get("only-a", "cache-b"), undefined);
      assert.equal(configMaps.get("shared", "cache-c"), undefined, "an unwatched namespace");
      assert.equal(namespaces.get("cache-c")?.metadata.name, "cache-c", "cluster-scoped kinds are not limited");
      assert.ok(keys(namespaces.list()).includes("cache-a"));
      assert.deepEqual(calls.sort(), ["add only-a", "add shared", "add shared"]);

      // Changes in either namespace reach the merged view; the unwatched one never does.
      await createCm(rest, "cache-b", "new", "1", { metadata: { name: "", labels: { team: "b" } } });
      await createCm(rest, "cache-c", "new");
      await waitFor("the new object in cache-b", () => configMaps.get("new", "cache-b"));
      assert.deepEqual(keys(configMaps.list({ labels: { team: "b" } })), ["cache-b/new"]);
      assert.deepEqual(keys(configMaps.list({ namespace: "cache-b", index: { name: BY_NAMESPACE, value: "cache-b" } })), [
        "cache-b/new",
        "cache-b/shared",
      ]);

      // A kind asked for after the cache started gets started too.
      const secrets = cache.informer(SecretKind);
      await secrets.waitForSync();
      assert.equal(secrets.informers.length, 2);
      assert.ok(secrets.hasSynced);
      await rest.request("POST", "/api/v1/namespaces/cache-a/secrets", { body: { metadata: { name: "s" } } });
      await waitFor("the new Secret through the late informer", () => secrets.get("s", "cache-a"));
      assert.equal(cache.informer(ConfigMapKind), configMaps);
      assert.equal(configMaps.get("new", "cache-c"), undefined);
    } finally {
      await runner.stop();
    }
  });

  it("lists 10,000 objects in pages", async (t) => {
    const ns = "paging";
    const count = 10_000;
    const pageSize = 500;
    const parallel = 50;
    await createNamespace(cp.kubeConfig, ns);
    const own = (await rest.request<ObjectList>("GET", cmPath(ns))).items.length;
    const started = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: parallel }, async () => {
        while (next < count) {
          const i = next++;
          await createCm(rest, ns, `cm-${i}`, String(i));
        }
      }),
    );
    t.diagnostic(`created ${count} ConfigMaps in ${Math.round(performance.now() - started)} ms (${parallel} in parallel)`);

    const informer = new Informer(rest, ConfigMapKind, { ...FAST, namespace: ns, pageSize });
    const runner = run(informer);
    try {
      const listing = performance.now();
      await waitFor("the informer to sync", () => informer.hasSynced, { timeoutMs: 60_000 });
      t.diagnostic(`informer listed ${informer.store.size} objects in ${Math.round(performance.now() - listing)} ms`);
      const total = own + count;
      assert.equal(informer.stats.lists, Math.ceil(total / pageSize), `one list request per page of ${pageSize}`);
      assert.equal(informer.store.size, total);
      assert.equal(informer.store.byIndex(BY_NAMESPACE, ns).length, total);
      assert.equal(informer.store.get(`${ns}/cm-1234`)?.data?.v, "1234");
      assert.equal(informer.store.get(`${ns}/cm-${count - 1}`)?.data?.v, String(count - 1));
    } finally {
      await runner.stop();
    }
  });
  // Regression: undici 8 speaks HTTP/2 to the API server by default (ALPN); rest.ts now asks for
  // HTTP/1.1. Before that, a watch aborted in the tick it was dispatched (a
  // cache stopped right after it synced) leaves an HTTP/2 stream with no error listener; when the
  // client is closed later, that stream emits ClientDestroyedError and nothing catches it: in a
  // manager, an uncaught exception at shutdown. It runs in a child process so it cannot take this
  // file down with it.
  it("closing the client after a cache stopped right at sync raises no uncaught error", async () => {
    const script = `
      import { KubeConfig } from "@kubernetes/client-node";
      import { ConfigMapKind, RestClient, SharedCache } from ${JSON.stringify(new URL("../../core/runtime.ts", import.meta.url).href)};
      let uncaught = 0;
      process.on("uncaughtException", () => uncaught++);
      const kc = new KubeConfig();
      kc.loadFromFile(process.env.KUBEPLUG_TEST_KUBECONFIG);
      for (let round = 0; round < 3; round++) {
        const rest = await RestClient.create(kc);
        const cache = new SharedCache(rest, { namespaces: ["frozen"] });
        cache.informer(ConfigMapKind);
        const abort = new AbortController();
        const running = cache.start(abort.signal);
        await cache.waitForSync();
        abort.abort();
        await running;
        // The failure needs the client to outlive the aborted stream a little, as in a manager.
        await new Promise((r) => setTimeout(r, 300));
        await rest.close();
      }
      await new Promise((r) => setTimeout(r, 300));
      console.log(JSON.stringify({ uncaught }));
    `;
    const { stdout } = await promisify(execFile)(process.execPath, ["--input-type=module", "-e", script], {
      cwd: fileURLToPath(new URL("../../", import.meta.url)),
      env: { ...process.env, KUBEPLUG_TEST_KUBECONFIG: cp.kubeconfigPath },
      timeout: 60_000,
    });
    const { uncaught } = JSON.parse(stdout.trim().split("\n").at(-1) ?? "{}") as { uncaught: number };
    assert.equal(uncaught, 0, "uncaught exceptions while closing the client");
  });
});

describe("Informer when resourceVersions expire (watch cache off, etcd compacted every second)", () => {
  let cp: ControlPlane;
  let rest: RestClient;

  before(async () => {
    // Without the watch cache a watch is served by etcd itself, so a compacted resourceVersion is
    // answered with 410 Gone (an ERROR event) within a second or two; kube-apiserver 1.20 does this.
    cp = await startControlPlane({
      controllerManager: false,
      apiserverArgs: ["--watch-cache=false", "--etcd-compaction-interval=1s"],
    });
    rest = await RestClient.create(cp.kubeConfig);
  });
  after(async () => {
    await rest?.close();
    await cp?.stop();
  });

  it("relists after 410 Gone and emits exactly the changes it missed", async () => {
    const ns = "expire";
    await createNamespace(cp.kubeConfig, ns);
    for (const name of ["keep", "update-me", "delete-me"]) await createCm(rest, ns, name);
    const via = await throughProxy(cp);
    const informer = new Informer(via.rest, ConfigMapKind, { ...FAST, namespace: ns });
    const { calls, handler } = recorder();
    informer.addHandler(handler);
    const runner = run(informer);
    try {
      await informer.waitForSync();
      assert.deepEqual(calls.sort(), ["add delete-me", "add keep", "add update-me"]);
      calls.length = 0;
      // The informer's resourceVersion is its list's (nothing changed since); a list now is at
      // least as new, so once a watch from this one is Gone, the informer's is too.
      const { resourceVersion } = (await rest.request<ObjectList>("GET", cmPath(ns))).metadata;

      via.proxy.setMode("refuse");
      via.proxy.cut();
      await createCm(rest, ns, "new");
      await updateCm(rest, ns, "update-me", "2");
      await deleteCm(rest, ns, "delete-me");
      await waitFor(`resourceVersion ${resourceVersion} to be compacted`, () => expired(rest, cmPath(ns), resourceVersion), {
        timeoutMs: 20_000,
      });
      assert.equal(informer.stats.relists, 0);
      assert.deepEqual(calls, [], "no connection, no news");
      via.proxy.setMode("pass");

      await waitFor("a relist", () => informer.stats.relists >= 1);
      await converged(rest, ns, informer);
      assert.deepEqual(calls.sort(), ["add new", "delete delete-me", "update update-me 1->2"]);
      assert.equal(informer.stats.lists, 2, "one page for the first list, one for the relist");
    } finally {
      await runner.stop();
      await via.close();
    }
  });

  // Regression: on 410 for a continue token, `continue` inside a do/while used to jump to
  // `while (continueToken)`, which was just cleared, so the store was replaced with an empty list.
  it("falls back to one unpaged list when its continue token expires", async () => {
    const ns = "continue";
    await createNamespace(cp.kubeConfig, ns);
    for (let i = 0; i < 5; i++) await createCm(rest, ns, `cm-${i}`);
    // A client whose second page waits until the first page's resourceVersion is compacted, so
    // the continue token (which carries that version) has expired when it is used.
    let firstPageVersion: string | undefined;
    let secondPageRequests = 0;
    const slow: RestClient = Object.create(rest);
    slow.request = async <T>(...args: Parameters<RestClient["request"]>): Promise<T> => {
      const query = args[2]?.query;
      if (query?.continue && firstPageVersion) {
        secondPageRequests++;
        const version = firstPageVersion;
        await waitFor("the first page's resourceVersion to be compacted", () => expired(rest, cmPath(ns), version), {
          timeoutMs: 20_000,
        });
      }
      const result = await rest.request<T>(...args);
      if (query?.limit && !query.continue) firstPageVersion = (result as ObjectList).metadata.resourceVersion;
      return result;
    };
    const informer = new Informer(slow, ConfigMapKind, { ...FAST, namespace: ns, pageSize: 2 });
    const runner = run(informer);
    try {
      await informer.waitForSync();
      assert.equal(secondPageRequests, 1, "the continue token was used once, after it expired");
      assert.equal(informer.store.size, 5, "every object is stored");
      await converged(rest, ns, informer);
      assert.equal(informer.stats.lists, 2, "the first page, then one unpaged list");
    } finally {
      await runner.stop();
    }
  });
});

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { type ConfigMap, ConfigMapKind } from "../../core/builtin-kinds.ts";
import { SharedCache } from "../../core/cache/shared-cache.ts";
import { Client } from "../../core/client/client.ts";
import { ApiError, RestClient } from "../../core/client/rest.ts";
import { Action } from "../../core/controller/result.ts";
import { createOrUpdate, OwnWrites } from "../../core/helpers/create-or-update.ts";
import {
  AlreadyOwnedError,
  type Condition,
  controllerReference,
  finalizer,
  findCondition,
  isConditionTrue,
  isControlledBy,
  jsonEqual,
  setCondition,
  setControllerReference,
  writeStatus,
} from "../../core/helpers/index.ts";
import { type Kind, kindOf } from "../../core/kinds.ts";
import type { KubeObject, Named } from "../../core/object.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { waitFor } from "../support/wait.ts";

const deepFreeze = <T>(value: T): T => {
  if (value && typeof value === "object") {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
};

const AppKind = kindOf<KubeObject>({ group: "example.com", version: "v1", kind: "App", plural: "apps", namespaced: true });
const ClusterAppKind = kindOf<KubeObject>({
  group: "example.com",
  version: "v1",
  kind: "ClusterApp",
  plural: "clusterapps",
  namespaced: false,
});

describe("owner references", () => {
  const owner = deepFreeze({ metadata: { name: "web", namespace: "ns", uid: "uid-1" } });
  const child = deepFreeze({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: "web-config", namespace: "ns" } });

  it("builds a controller reference", () => {
    assert.deepEqual(controllerReference(owner, AppKind), {
      apiVersion: "example.com/v1",
      kind: "App",
      name: "web",
      uid: "uid-1",
      controller: true,
      blockOwnerDeletion: true,
    });
    assert.throws(() => controllerReference({ metadata: { name: "x" } }, AppKind), /metadata\.uid is empty/);
  });

  it("adds the reference to a copy, keeps other references, and is idempotent", () => {
    const other = { apiVersion: "v1", kind: "Secret", name: "s", uid: "uid-s" };
    const withOther = deepFreeze({ ...child, metadata: { ...child.metadata, ownerReferences: [other] } });
    const owned = setControllerReference(owner, AppKind, withOther);
    assert.equal(withOther.metadata.ownerReferences.length, 1, "input untouched");
    assert.deepEqual(owned.metadata.ownerReferences, [other, controllerReference(owner, AppKind)]);
    assert.ok(isControlledBy(owned, owner));
    assert.ok(!isControlledBy(withOther, owner));
    const again = setControllerReference(owner, AppKind, deepFreeze(owned));
    assert.deepEqual(again.metadata.ownerReferences, owned.metadata.ownerReferences);
    // The same owner recreated (new uid): the reference is updated, not duplicated.
    const recreated = { metadata: { ...owner.metadata, uid: "uid-2" } };
    const updated = setControllerReference(recreated, AppKind, deepFreeze(owned));
    assert.equal(updated.metadata.ownerReferences?.length, 2);
    assert.ok(isControlledBy(updated, recreated));
    assert.ok(!isControlledBy(updated, owner));
  });

  it("refuses a second controller", () => {
    const owned = deepFreeze(setControllerReference(owner, AppKind, child));
    const rival = { metadata: { name: "api", namespace: "ns", uid: "uid-9" } };
    assert.throws(
      () => setControllerReference(rival, AppKind, owned),
      (err: unknown) =>
        err instanceof AlreadyOwnedError && /already controlled by App "web"/.test(err.message) && err.existing.uid === "uid-1",
    );
  });

  it("checks namespaces: cluster-scoped owners may own anything, namespaced ones only their namespace", () => {
    const clusterOwner = { metadata: { name: "global", uid: "uid-c" } };
    assert.ok(isControlledBy(setControllerReference(clusterOwner, ClusterAppKind, child), clusterOwner));
    const clusterChild = { kind: "ClusterRole", metadata: { name: "role" } };
    assert.ok(isControlledBy(setControllerReference(clusterOwner, ClusterAppKind, clusterChild), clusterOwner));
    assert.throws(
      () => setControllerReference(owner, AppKind, clusterChild),
      /ClusterRole "role" is cluster-scoped.*App "ns\/web"/,
    );
    const elsewhere = { kind: "ConfigMap", metadata: { name: "c", namespace: "other" } };
    assert.throws(
      () => setControllerReference(owner, AppKind, elsewhere),
      /ConfigMap "other\/c".*App "ns\/web".*cross-namespace/,
    );
  });
});

describe("conditions", () => {
  const t0 = new Date("2024-05-01T10:00:00.123Z");
  const t1 = new Date("2024-05-01T11:00:00.456Z");

  it("appends a new condition with the time at whole seconds, without touching the input", () => {
    const input: readonly Condition[] = deepFreeze([]);
    const out = setCondition(input, { type: "Ready", status: "False", reason: "Pending", message: "waiting" }, t0);
    assert.deepEqual(out, [
      { type: "Ready", status: "False", reason: "Pending", message: "waiting", lastTransitionTime: "2024-05-01T10:00:00Z" },
    ]);
    assert.equal(input.length, 0);
    assert.deepEqual(setCondition(undefined, { type: "Ready", status: "True", reason: "Up", message: "" }, t0).length, 1);
  });

  it("keeps lastTransitionTime while the status stays, even when reason and message change", () => {
    const first = deepFreeze(setCondition(undefined, { type: "Ready", status: "False", reason: "Pending", message: "a" }, t0));
    const same = setCondition(
      first,
      { type: "Ready", status: "False", reason: "Scaling", message: "b", observedGeneration: 2 },
      t1,
    );
    assert.deepEqual(same, [
      {
        type: "Ready",
        status: "False",
        reason: "Scaling",
        message: "b",
        observedGeneration: 2,
        lastTransitionTime: "2024-05-01T10:00:00Z",
      },
    ]);
    const flipped = setCondition(same, { type: "Ready", status: "True", reason: "Up", message: "" }, t1);
    assert.equal(flipped[0]?.lastTransitionTime, "2024-05-01T11:00:00Z");
    assert.equal(flipped[0]?.observedGeneration, undefined, "observedGeneration comes from the update");
  });

  it("keeps the order of other conditions and finds them", () => {
    let list = setCondition(undefined, { type: "Ready", status: "False", reason: "Pending", message: "" }, t0);
    list = setCondition(list, { type: "example.com/Synced", status: "True", reason: "Done", message: "" }, t0);
    list = setCondition(list, { type: "Ready", status: "True", reason: "Up", message: "" }, t1);
    assert.deepEqual(
      list.map((c) => c.type),
      ["Ready", "example.com/Synced"],
    );
    assert.ok(isConditionTrue(list, "Ready"));
    assert.ok(!isConditionTrue(list, "Missing"));
    assert.equal(findCondition(list, "example.com/Synced")?.reason, "Done");
    assert.equal(findCondition(undefined, "Ready"), undefined);
  });

  it("rejects invalid conditions, naming the field", () => {
    assert.throws(
      () => setCondition(undefined, { type: "Ready", status: "Yes" as "True", reason: "Up", message: "" }),
      /invalid condition "Ready"[\s\S]*status/,
    );
    assert.throws(() => setCondition(undefined, { type: "Ready", status: "True", reason: "not ok", message: "" }), /reason/);
    assert.throws(() => setCondition(undefined, { type: "", status: "True", reason: "Up", message: "" }), /type/);
  });

  it("compares JSON values ignoring key order and undefined members", () => {
    assert.ok(jsonEqual({ a: 1, b: [1, { c: 2, d: undefined }] }, { b: [1, { c: 2 }], a: 1 }));
    assert.ok(!jsonEqual({ a: [1, 2] }, { a: [2, 1] }));
    assert.ok(!jsonEqual({ a: 1 }, { a: 1, b: null }));
    assert.ok(!jsonEqual([], {}));
  });
});

// ---------------------------------------------------------------------------------------------
// Against a real API server.

interface GadgetStatus {
  count?: number;
  phase?: string;
  conditions?: Condition[];
}
interface Gadget extends KubeObject {
  spec?: { size?: number };
  status?: GadgetStatus;
}

const GROUP = "helpers.test.kubeplug.dev";
const GadgetKind: Kind<Gadget, true> = kindOf<Gadget, true>({
  group: GROUP,
  version: "v1",
  kind: "Gadget",
  plural: "gadgets",
  namespaced: true,
});
const NS = "default";
const FINALIZER = "helpers.test.kubeplug.dev/cleanup";
const FOREIGN = "other.example.com/keep";

const crd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: `gadgets.${GROUP}` },
  spec: {
    group: GROUP,
    scope: "Namespaced",
    names: { plural: "gadgets", singular: "gadget", kind: "Gadget" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        subresources: { status: {} },
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
              status: { type: "object", "x-kubernetes-preserve-unknown-fields": true },
            },
          },
        },
      },
    ],
  },
};

describe("helpers against the API server", () => {
  let cp: ControlPlane | undefined;
  let rest: RestClient;
  let client: Client;
  const ac = new AbortController();
  let cacheRunning: Promise<void> | undefined;

  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
    await rest.request("POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", { body: crd });
    await waitFor("the Gadget resource to be served", () => rest.request("GET", `/apis/${GROUP}/v1/gadgets`).then(() => true));
    const cache = new SharedCache(rest);
    client = new Client(rest, cache);
    cacheRunning = cache.start(ac.signal);
  });

  after(async () => {
    ac.abort();
    await cacheRunning;
    await rest?.close();
    await cp?.stop();
  });

  async function createGadget(name: string, finalizers?: string[]): Promise<Named<Gadget, true>> {
    const created = await client.create(GadgetKind, {
      metadata: { name, namespace: NS, ...(finalizers ? { finalizers } : {}) },
      spec: { size: 1 },
    });
    return cached(name, (g) => g.metadata.resourceVersion === created.metadata.resourceVersion);
  }

  /** The cached object once it satisfies `ready`. */
  function cached(name: string, ready: (g: Gadget) => boolean): Promise<Named<Gadget, true>> {
    return waitFor(`Gadget ${name} in the cache`, async () => {
      const g = await client.get(GadgetKind, name, NS);
      return g && ready(g) ? g : undefined;
    });
  }

  const finalizersOf = async (name: string) => (await client.reader.get(GadgetKind, name, NS))?.metadata.finalizers ?? [];

  describe("createOrUpdate", () => {
    it("creates, then writes nothing while in place, then repairs drift", async () => {
      const key = { name: "cou", namespace: NS };
      const want = (cm: ConfigMap) => {
        cm.metadata.labels = { ...cm.metadata.labels, owner: "test" };
        cm.data = { ...cm.data, size: "3" };
      };
      const first = await createOrUpdate(client, ConfigMapKind, key, want);
      assert.equal(first.result, "created");
      const cached = await waitFor("the cache to see it", async () => client.get(ConfigMapKind, "cou", NS));
      const again = await createOrUpdate(client, ConfigMapKind, key, want);
      assert.equal(again.result, "unchanged", "no write when nothing differs");
      assert.equal(again.object.metadata.resourceVersion, cached.metadata.resourceVersion);
      // Someone else's fields are kept; ours are put back.
      await client.patch(ConfigMapKind, "cou", NS, {
        metadata: { labels: { owner: "someone", extra: "x" } },
        data: { size: "9", other: "y" },
      });
      await waitFor("the cache to see the drift", async () => (await client.get(ConfigMapKind, "cou", NS))?.data?.size === "9");
      const repaired = await createOrUpdate(client, ConfigMapKind, key, want);
      assert.equal(repaired.result, "updated");
      assert.deepEqual(repaired.object.data, { size: "3", other: "y" });
      assert.deepEqual(repaired.object.metadata.labels, { owner: "test", extra: "x" });
    });

    it("recovers when a create races the cache (AlreadyExists)", async () => {
      await client.create(ConfigMapKind, { metadata: { name: "cou-race", namespace: NS }, data: { size: "1" } });
      // Straight after the create the cache may not have it yet; either way the result is right.
      const r = await createOrUpdate(client, ConfigMapKind, { name: "cou-race", namespace: NS }, (cm) => {
        cm.data = { size: "2" };
      });
      assert.equal(r.object.data?.size, "2");
    });

    /** The client, but its cache answers `stale` for every object. */
    const withStaleCache = (stale: ConfigMap) =>
      new Proxy(client, {
        get(target, prop) {
          if (prop === "get") return async () => stale;
          const value = Reflect.get(target, prop, target);
          return typeof value === "function" ? value.bind(target) : value;
        },
      });

    it("on a Conflict (a stale cached copy) reads the object from the API and tries once more", async () => {
      const key = { name: "cou-conflict", namespace: NS };
      const stale = await client.create(ConfigMapKind, { metadata: key, data: { size: "1" } });
      await client.patch(ConfigMapKind, key.name, NS, { data: { other: "y" } });
      const r = await createOrUpdate(withStaleCache(stale), ConfigMapKind, key, (cm) => {
        cm.data = { ...cm.data, size: "2" };
      });
      assert.equal(r.result, "updated");
      assert.deepEqual(r.object.data, { size: "2", other: "y" }, "the other writer's change is kept");
    });

    it("with OwnWrites, compares a copy the cache shows from before its own update with that update", async () => {
      const key = { name: "cou-own", namespace: NS };
      const stale = await client.create(ConfigMapKind, { metadata: key, data: { size: "1" } });
      const writes = new OwnWrites();
      const want = (cm: ConfigMap) => {
        cm.data = { size: "2" };
      };
      const first = await createOrUpdate(withStaleCache(stale), ConfigMapKind, key, want, { writes });
      assert.equal(first.result, "updated");
      // The cache still shows the version that update replaced: nothing to write.
      const again = await createOrUpdate(withStaleCache(stale), ConfigMapKind, key, want, { writes });
      assert.equal(again.result, "unchanged");
      assert.equal(again.object.metadata.resourceVersion, first.object.metadata.resourceVersion);
      // Another version in the cache (here: someone else's change) is compared as it is.
      const changed = await client.patch(ConfigMapKind, key.name, NS, { data: { size: "9" } });
      const repaired = await createOrUpdate(withStaleCache(changed), ConfigMapKind, key, want, { writes });
      assert.equal(repaired.result, "updated");
      assert.equal(repaired.object.data?.size, "2");
    });
  });

  describe("writeStatus", () => {
    it("writes once, then not again while the status is unchanged", async () => {
      const gadget = await createGadget("status-once");
      assert.ok(Object.isFrozen(gadget), "cached objects are frozen");
      const now = new Date("2024-05-01T10:00:00Z");
      const compute = (g: Gadget): GadgetStatus => ({
        phase: "Ready",
        conditions: setCondition(g.status?.conditions, { type: "Ready", status: "True", reason: "Up", message: "ok" }, now),
      });
      const first = await writeStatus(client, GadgetKind, gadget, compute);
      assert.equal(first.written, true);
      assert.notEqual(first.object.metadata.resourceVersion, gadget.metadata.resourceVersion);
      assert.equal(first.object.status?.phase, "Ready");

      const fresh = await cached("status-once", (g) => g.metadata.resourceVersion === first.object.metadata.resourceVersion);
      // A later reconcile recomputes with a later clock: the condition keeps its time, so nothing differs.
      const later = (g: Gadget): GadgetStatus => ({
        conditions: setCondition(g.status?.conditions, { type: "Ready", status: "True", reason: "Up", message: "ok" }),
        phase: "Ready",
      });
      const second = await writeStatus(client, GadgetKind, fresh, later);
      assert.equal(second.written, false);
      assert.equal(second.object, fresh);
      const server = await client.reader.get(GadgetKind, "status-once", NS);
      assert.equal(server?.metadata.resourceVersion, first.object.metadata.resourceVersion, "no write reached the server");
    });

    it("recovers from a conflict by re-reading and recomputing", async () => {
      const stale = await createGadget("status-conflict");
      // Someone else writes the status after our read: our resourceVersion is now stale.
      await client.patchStatus(GadgetKind, "status-conflict", NS, { status: { count: 5 } });
      const seen: (number | undefined)[] = [];
      const result = await writeStatus(client, GadgetKind, stale, (g) => {
        seen.push(g.status?.count);
        return { count: (g.status?.count ?? 0) + 1 };
      });
      assert.deepEqual(seen, [undefined, 5], "computed once from the stale object, once from the re-read one");
      assert.equal(result.written, true);
      assert.equal(result.object.status?.count, 6);
      assert.equal((await client.reader.get(GadgetKind, "status-conflict", NS))?.status?.count, 6);
    });

    it("throws NotFound when the object is gone", async () => {
      const gadget = await createGadget("status-gone");
      await client.delete(GadgetKind, "status-gone", NS);
      await assert.rejects(
        writeStatus(client, GadgetKind, gadget, () => ({ count: 1 })),
        (err: unknown) => err instanceof ApiError && err.code === 404,
      );
    });
  });

  describe("finalizer", () => {
    it("adds the finalizer first, then applies, then cleans up once and lets the object go", async () => {
      let applies = 0;
      let cleanups = 0;
      let failCleanup = true;
      const reconcile = (g: Gadget) =>
        finalizer(client, GadgetKind, FINALIZER, g, async (event) => {
          if (event.type === "apply") {
            applies++;
            return Action.requeueAfter(60_000);
          }
          if (failCleanup) {
            failCleanup = false;
            throw new Error("external resource busy");
          }
          cleanups++;
          return Action.awaitChange();
        });

      const created = await createGadget("fin-plain");
      assert.deepEqual(await reconcile(created), Action.requeueAfter(60_000), "apply runs on the patched object");
      assert.equal(applies, 1, "apply ran once, after the finalizer was stored");
      assert.deepEqual(await finalizersOf("fin-plain"), [FINALIZER]);

      const withFinalizer = await cached("fin-plain", (g) => (g.metadata.finalizers ?? []).includes(FINALIZER));
      assert.deepEqual(await reconcile(withFinalizer), Action.requeueAfter(60_000));
      assert.equal(applies, 2);

      await client.delete(GadgetKind, "fin-plain", NS);
      const deleting = await cached("fin-plain", (g) => Boolean(g.metadata.deletionTimestamp));
      await assert.rejects(reconcile(deleting), /external resource busy/);
      assert.deepEqual(await finalizersOf("fin-plain"), [FINALIZER], "a failed cleanup keeps the finalizer and the object");

      assert.deepEqual(await reconcile(deleting), Action.awaitChange());
      assert.equal(cleanups, 1);
      await waitFor("fin-plain to be deleted", async () => (await client.reader.get(GadgetKind, "fin-plain", NS)) === undefined);
      await waitFor("fin-plain to leave the cache", async () => (await client.get(GadgetKind, "fin-plain", NS)) === undefined);
      assert.equal(applies, 2);
      assert.equal(cleanups, 1);
    });

    it("never removes another controller's finalizer", async () => {
      let cleanups = 0;
      const reconcile = (g: Gadget) =>
        finalizer(client, GadgetKind, FINALIZER, g, async (event) => {
          if (event.type === "cleanup") cleanups++;
        });
      const created = await createGadget("fin-shared", [FOREIGN]);
      assert.deepEqual(await reconcile(created), undefined, "apply runs right after the add");
      assert.deepEqual(await finalizersOf("fin-shared"), [FOREIGN, FINALIZER], "appended after the foreign finalizer");
      // A second add from the same (now stale) view fails its test instead of adding a duplicate.
      await assert.rejects(reconcile(created), (err: unknown) => err instanceof ApiError && err.code === 422);
      assert.deepEqual(await finalizersOf("fin-shared"), [FOREIGN, FINALIZER]);

      await client.delete(GadgetKind, "fin-shared", NS);
      const deleting = await cached(
        "fin-shared",
        (g) => Boolean(g.metadata.deletionTimestamp) && g.metadata.finalizers?.length === 2,
      );
      assert.deepEqual(await reconcile(deleting), undefined, "cleanup's result is returned");
      assert.equal(cleanups, 1);
      assert.deepEqual(await finalizersOf("fin-shared"), [FOREIGN]);

      // The next reconcile sees the object still deleting (the foreign finalizer holds it) but without ours.
      const after = await cached("fin-shared", (g) => g.metadata.finalizers?.length === 1);
      assert.deepEqual(await reconcile(after), Action.awaitChange());
      assert.equal(cleanups, 1, "cleanup does not run again");
      assert.ok(await client.reader.get(GadgetKind, "fin-shared", NS), "the foreign finalizer still holds the object");

      await client.patch(GadgetKind, "fin-shared", NS, { metadata: { finalizers: null } });
      await waitFor(
        "fin-shared to be deleted",
        async () => (await client.reader.get(GadgetKind, "fin-shared", NS)) === undefined,
      );
    });

    it("does not remove whatever sits at a stale index", async () => {
      const created = await createGadget("fin-stale", [FOREIGN, FINALIZER]);
      // The list shifts after our read: the foreign finalizer moves to where ours was.
      await client.patch(GadgetKind, "fin-stale", NS, { metadata: { finalizers: [FINALIZER, FOREIGN] } });
      await client.delete(GadgetKind, "fin-stale", NS);
      const staleDeleting = { ...created, metadata: { ...created.metadata, deletionTimestamp: new Date().toISOString() } };
      let cleanups = 0;
      const reconcile = (g: Gadget) =>
        finalizer(client, GadgetKind, FINALIZER, g, async () => {
          cleanups++;
        });
      await assert.rejects(reconcile(staleDeleting), (err: unknown) => err instanceof ApiError && err.code === 422);
      assert.deepEqual(await finalizersOf("fin-stale"), [FINALIZER, FOREIGN], "nothing removed");

      const fresh = await cached(
        "fin-stale",
        (g) => Boolean(g.metadata.deletionTimestamp) && g.metadata.finalizers?.[0] === FINALIZER,
      );
      await reconcile(fresh);
      assert.equal(cleanups, 2, "cleanup ran again: it must be idempotent");
      assert.deepEqual(await finalizersOf("fin-stale"), [FOREIGN]);
      await client.patch(GadgetKind, "fin-stale", NS, { metadata: { finalizers: null } });
    });

    it("keeps the finalizer while cleanup asks to be requeued", async () => {
      await createGadget("fin-requeue", [FINALIZER]);
      await client.delete(GadgetKind, "fin-requeue", NS);
      const deleting = await cached("fin-requeue", (g) => Boolean(g.metadata.deletionTimestamp));
      const result = await finalizer(client, GadgetKind, FINALIZER, deleting, async () => Action.requeueAfter(1000));
      assert.deepEqual(result, Action.requeueAfter(1000));
      assert.deepEqual(await finalizersOf("fin-requeue"), [FINALIZER]);
      await finalizer(client, GadgetKind, FINALIZER, deleting, async () => Action.awaitChange());
      await waitFor(
        "fin-requeue to be deleted",
        async () => (await client.reader.get(GadgetKind, "fin-requeue", NS)) === undefined,
      );
    });

    it("adds the finalizer to an object without any unless someone added a finalizer meanwhile", async () => {
      const stale = await createGadget("fin-racy");
      // An unrelated change does not get in the way (kube-rs's `test null` on the finalizer list)...
      await client.patch(GadgetKind, "fin-racy", NS, { metadata: { labels: { touched: "yes" } } });
      await finalizer(client, GadgetKind, FINALIZER, stale, async () => undefined);
      assert.deepEqual(await finalizersOf("fin-racy"), [FINALIZER]);
      // ...but a finalizer added by someone else since the read does: the list is never clobbered.
      const stale2 = await createGadget("fin-racy-2");
      await client.patch(GadgetKind, "fin-racy-2", NS, { metadata: { finalizers: ["other.example.com/keep"] } });
      await assert.rejects(
        finalizer(client, GadgetKind, FINALIZER, stale2, async () => undefined),
        (err: unknown) => err instanceof ApiError && err.code === 422,
      );
      assert.deepEqual(await finalizersOf("fin-racy-2"), ["other.example.com/keep"]);
    });
  });
});

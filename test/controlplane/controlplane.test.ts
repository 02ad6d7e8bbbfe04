import assert from "node:assert/strict";
import { execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { AppsV1Api, CoreV1Api, CustomObjectsApi } from "@kubernetes/client-node";
import { processExists, waitFor } from "../support/wait.ts";
import { type ControlPlane, ensureBinaries, ensureTools, startControlPlane, startPodReadiness } from "./index.ts";

const run = promisify(execFile);
const here = import.meta.dirname;

const crd = {
  apiVersion: "apiextensions.k8s.io/v1",
  kind: "CustomResourceDefinition",
  metadata: { name: "widgets.test.kubeplug.dev" },
  spec: {
    group: "test.kubeplug.dev",
    scope: "Namespaced",
    names: { plural: "widgets", singular: "widget", kind: "Widget" },
    versions: [
      {
        name: "v1",
        served: true,
        storage: true,
        schema: {
          openAPIV3Schema: {
            type: "object",
            properties: {
              spec: {
                type: "object",
                properties: { size: { type: "integer", minimum: 1, maximum: 10, default: 3 } },
              },
            },
          },
        },
      },
    ],
  },
};

describe("local control plane", () => {
  let cp: ControlPlane;
  before(async () => {
    cp = await startControlPlane();
  });
  after(async () => {
    await cp?.stop();
  });

  it("serves kubectl with the written kubeconfig", async () => {
    const { kubectl } = await ensureTools();
    const { stdout } = await run(kubectl, ["--kubeconfig", cp.kubeconfigPath, "get", "namespaces", "-o", "name"]);
    assert.match(stdout, /namespace\/default/);
    assert.match(stdout, /namespace\/kube-system/);
  });

  it("installs a CRD; its custom resources are defaulted, validated, and the API server survives", async () => {
    const { kubectl } = await ensureTools();
    const apply = spawn(kubectl, ["--kubeconfig", cp.kubeconfigPath, "apply", "-f", "-"]);
    apply.stdin.end(JSON.stringify(crd));
    assert.equal(await new Promise((r) => apply.on("exit", r)), 0);
    await run(kubectl, [
      "--kubeconfig",
      cp.kubeconfigPath,
      "wait",
      "--for=condition=Established",
      "crd/widgets.test.kubeplug.dev",
    ]);
    const api = cp.kubeConfig.makeApiClient(CustomObjectsApi);
    const target = { group: "test.kubeplug.dev", version: "v1", namespace: "default", plural: "widgets" };
    const created = (await waitFor("the Widget endpoint", () =>
      api.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: "test.kubeplug.dev/v1", kind: "Widget", metadata: { name: "w1" }, spec: {} },
      }),
    )) as { spec: { size: number } };
    assert.equal(created.spec.size, 3, "the schema default is applied");
    await assert.rejects(
      api.createNamespacedCustomObject({
        ...target,
        body: { apiVersion: "test.kubeplug.dev/v1", kind: "Widget", metadata: { name: "w2" }, spec: { size: 11 } },
      }),
      (err: { code?: number; body?: string }) => err.code === 422 && /should be less than or equal to 10/.test(String(err.body)),
    );
    const got = (await api.getNamespacedCustomObject({ ...target, name: "w1" })) as { spec: { size: number } };
    assert.equal(got.spec.size, 3, "the API server is still up and serves the stored object");
  });

  it("runs Deployments to ReplicaSets and Pods; the readiness helper makes them available", async () => {
    const apps = cp.kubeConfig.makeApiClient(AppsV1Api);
    const readiness = startPodReadiness(cp.kubeConfig, { namespace: "default", labelSelector: "app=web" });
    try {
      await apps.createNamespacedDeployment({
        namespace: "default",
        body: {
          metadata: { name: "web" },
          spec: {
            replicas: 2,
            selector: { matchLabels: { app: "web" } },
            template: { metadata: { labels: { app: "web" } }, spec: { containers: [{ name: "web", image: "nginx:1.27" }] } },
          },
        },
      });
      const available = await waitFor(
        "2 available replicas",
        async () => {
          const d = await apps.readNamespacedDeployment({ name: "web", namespace: "default" });
          return d.status?.availableReplicas === 2 ? d : undefined;
        },
        { timeoutMs: 60_000 },
      );
      assert.equal(available.status?.readyReplicas, 2);
      assert.ok(readiness.marked >= 2);
    } finally {
      await readiness.stop();
    }
  });

  it("garbage-collects owned objects when the owner is deleted", async () => {
    const core = cp.kubeConfig.makeApiClient(CoreV1Api);
    const owner = await core.createNamespacedConfigMap({ namespace: "default", body: { metadata: { name: "owner" } } });
    await core.createNamespacedConfigMap({
      namespace: "default",
      body: {
        metadata: {
          name: "child",
          ownerReferences: [
            { apiVersion: "v1", kind: "ConfigMap", name: "owner", uid: owner.metadata?.uid as string, controller: true },
          ],
        },
      },
    });
    await core.deleteNamespacedConfigMap({ name: "owner", namespace: "default" });
    await waitFor(
      "the child to be garbage-collected",
      async () => {
        try {
          await core.readNamespacedConfigMap({ name: "child", namespace: "default" });
          return false;
        } catch (err) {
          return (err as { code?: number }).code === 404;
        }
      },
      { timeoutMs: 60_000 },
    );
  });
});

describe("control plane lifecycle", () => {
  it("runs two at once, and stop leaves no process and no directory behind", async () => {
    const [a, b] = await Promise.all([
      startControlPlane({ controllerManager: false }),
      startControlPlane({ controllerManager: false }),
    ]);
    const pids = [...a.pids(), ...b.pids()];
    try {
      assert.notEqual(a.server, b.server);
      assert.equal(pids.length, 4);
      for (const cp of [a, b]) {
        const ns = await cp.kubeConfig.makeApiClient(CoreV1Api).listNamespace();
        assert.ok(ns.items.length > 0);
      }
    } finally {
      await Promise.all([a.stop(), b.stop()]);
    }
    for (const pid of pids) assert.equal(processExists(pid), false, `pid ${pid} is gone`);
    assert.equal(existsSync(a.dir), false);
    assert.equal(existsSync(b.dir), false);
  });

  it("kills and restarts etcd and the API server on the same data, ports and certificates", async () => {
    const cp = await startControlPlane({ controllerManager: false });
    try {
      const core = cp.kubeConfig.makeApiClient(CoreV1Api);
      // A namespace of its own: without a controller manager, "default" appears only once the API
      // server's bootstrap controller has run, which on a loaded machine can come after /readyz.
      await core.createNamespace({ body: { metadata: { name: "restarts" } } });
      await core.createNamespacedConfigMap({
        namespace: "restarts",
        body: { metadata: { name: "survivor" }, data: { kept: "yes" } },
      });
      const before = cp.pids();
      await cp.kill("kube-apiserver");
      await cp.kill("etcd");
      assert.equal(cp.pids().length, 0, "both are gone");
      await assert.rejects(core.readNamespacedConfigMap({ namespace: "restarts", name: "survivor" }));
      await cp.start("etcd");
      await cp.start("kube-apiserver");
      assert.equal(cp.pids().length, 2);
      assert.notDeepEqual(cp.pids(), before, "new processes");
      // Same port and CA: the kubeconfig written at the start still works, and the data is there.
      const kept = await core.readNamespacedConfigMap({ namespace: "restarts", name: "survivor" });
      assert.equal(kept.data?.kept, "yes");
      await assert.rejects(cp.start("kube-controller-manager"), /runs no kube-controller-manager/);
      await assert.rejects(cp.start("etcd"), /still running/);
    } finally {
      await cp.stop();
    }
  });

  for (const signal of ["SIGTERM", "SIGINT", "SIGKILL"] as const) {
    it(`cleans up when its owner process gets ${signal}`, async () => {
      const script = `import { startControlPlane } from ${JSON.stringify(join(here, "index.ts"))};
const cp = await startControlPlane({ controllerManager: false });
console.log(JSON.stringify({ pids: cp.pids(), dir: cp.dir }));
setInterval(() => {}, 1000);`;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (d) => {
        out += d;
      });
      const info = await waitFor("the child's control plane", () => (out.includes("\n") ? JSON.parse(out) : undefined), {
        timeoutMs: 60_000,
      });
      assert.equal(info.pids.length, 2);
      child.kill(signal);
      await waitFor(
        `processes and ${info.dir} to be gone`,
        () => info.pids.every((pid: number) => !processExists(pid)) && !existsSync(info.dir),
      );
    });
  }
});

describe("binaries", () => {
  it("names the missing binary when KUBEBUILDER_ASSETS is incomplete", async () => {
    const assets = mkdtempSync(join(tmpdir(), "kubeplug-assets-"));
    const saved = process.env.KUBEBUILDER_ASSETS;
    try {
      symlinkSync((await ensureBinaries()).etcd, join(assets, "etcd"));
      process.env.KUBEBUILDER_ASSETS = assets;
      await assert.rejects(
        ensureBinaries(),
        /KUBEBUILDER_ASSETS=.* has no executable kube-apiserver: the folder must hold etcd and kube-apiserver/,
      );
      await assert.rejects(startControlPlane(), /has no executable kube-apiserver/);
    } finally {
      if (saved === undefined) delete process.env.KUBEBUILDER_ASSETS;
      else process.env.KUBEBUILDER_ASSETS = saved;
      rmSync(assets, { recursive: true, force: true });
    }
  });
});

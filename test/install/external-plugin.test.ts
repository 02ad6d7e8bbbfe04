/**
 * A plugin written outside this repository, the way its author would: `npm pack` kubeplug, scaffold
 * a standalone package on the tarball, `npm install` and `npm test` in it (on kubeplug/testing and
 * a local control plane), build it and generate its Helm chart (`npm run manifests`). Then the chart
 * is `helm install`ed, and `kubeplug run --plugin .` from the package's own kubeplug, started with the
 * chart Deployment's own arguments and nothing but the chart's ServiceAccount token (there is no
 * kubelet: the Pod never runs, so the operator runs on the host and the webhooks are pointed at it),
 * reconciles the package's sample, its webhooks refuse an invalid object, and the API server refuses
 * it what the generated RBAC does not grant.
 */
import assert from "node:assert/strict";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { load } from "js-yaml";
import { ApiError, ConfigMapKind, type KubeObject, objectPath, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, ensureTools, freePort, startControlPlane, type Tools } from "../controlplane/index.ts";
import {
  assertForbidden,
  cleanEnv,
  type DeploymentContainerLike,
  flag,
  type HostOperator,
  pointWebhooksAtHost,
  readObject,
  runOperatorAsDeployment,
  type ServiceAccountCredentials,
  serviceAccountKubeconfig,
  webhookCaInjected,
} from "../support/chart-operator.ts";
import { fetchText } from "../support/cluster.ts";
import { execOk as run } from "../support/exec.ts";
import { packKubeplug } from "../support/pack.ts";
import { waitFor } from "../support/wait.ts";

const root = join(import.meta.dirname, "..", "..");
const RELEASE = "bk";
const NS = "backup-system";
/** The chart's `kubeplug.fullname` for release `bk`. */
const FULL = "bk-kubeplug";
const HOSTNAME = `${FULL}-on-host`;
/** No kubelet pulls it: the chart's Pods never run. */
const IMAGE = "registry.example.com/kubeplug-plugin-backup";
const CRD = "backuppolicies.backup.example.com";
const COLLECTION = "/apis/backup.example.com/v1/namespaces/default/backuppolicies";

/**
 * Every child this file started. Commands run in their own process group (npm starts more
 * processes), so the group is killed; `after` (and, as a last resort, process exit) kills survivors.
 */
const children = new Set<ChildProcess>();
function killChildren(): void {
  for (const child of children) {
    if (child.exitCode !== null || child.signalCode !== null || child.pid === undefined) continue;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      child.kill("SIGKILL");
    }
  }
}
process.on("exit", killChildren);

/** The environment of a child that runs its own `node --test`: without NODE_TEST_CONTEXT, which would make it report to us in its wire format. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

/** Runs a command to its end in its own process group (killed with the test); fails with its output unless it exits 0. */
function execOk(command: string, args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  return run(command, args, { ...options, env: options.env ?? childEnv(), detached: true, track: children });
}

describe("a plugin published outside the repository", () => {
  let work: string;
  let cp: ControlPlane;
  let tools: Tools;
  let rest: RestClient;
  /** The scaffolded package. */
  let dir: string;
  let started: number;
  let tarballSize: number;

  /** Helm with its cache, config and data in the test's directory, talking to the test control plane. */
  const helm = (args: string[]) =>
    execOk(tools.helm, [...args, "--kubeconfig", cp.kubeconfigPath], {
      env: cleanEnv({
        HELM_CACHE_HOME: join(work, "helm/cache"),
        HELM_CONFIG_HOME: join(work, "helm/config"),
        HELM_DATA_HOME: join(work, "helm/data"),
      }),
    });

  before(async () => {
    work = mkdtempSync(join(tmpdir(), "kubeplug-external-"));
    // With kube-controller-manager: its token controller gives the chart's ServiceAccount a token Secret.
    [cp, tools] = await Promise.all([startControlPlane(), ensureTools()]);
    rest = await RestClient.create(cp.kubeConfig);
  });
  after(async () => {
    killChildren();
    await rest?.close();
    await cp?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("packs, scaffolds, installs, tests, builds and generates its chart", async () => {
    started = performance.now();
    const tarball = await packKubeplug(work);
    tarballSize = statSync(tarball).size;
    dir = join(work, "backup");
    await execOk(process.execPath, [
      join(root, "cli/main.ts"),
      "create",
      "plugin",
      "backup",
      "--group",
      "backup.example.com",
      "--version",
      "v1",
      "--kind",
      "BackupPolicy",
      "--dir",
      dir,
      "--kubeplug",
      tarball,
    ]);
    const manifest = JSON.parse(readFileSync(join(dir, "package.json"), "utf8")) as {
      peerDependencies: Record<string, string>;
      devDependencies: Record<string, string>;
    };
    assert.equal(manifest.peerDependencies.kubeplug, ">=0.1.0", "kubeplug is a peer dependency");
    assert.equal(manifest.devDependencies.kubeplug, `file:${tarball}`);

    await execOk("npm", ["install", "--no-audit", "--no-fund"], { cwd: dir });
    const test = await execOk("npm", ["test"], { cwd: dir });
    assert.match(test, /ℹ pass 1/);
    assert.match(test, /ℹ fail 0/);
    await execOk("npm", ["run", "build"], { cwd: dir });
    assert.ok(existsSync(join(dir, "dist/index.d.ts")), "type declarations are built");
    await execOk("npm", ["run", "manifests"], { cwd: dir });
    assert.ok(existsSync(join(dir, `manifests/crds/${CRD}.yaml`)), "the CRD is generated");
    assert.match(readFileSync(join(dir, "manifests/templates/rbac-generated.yaml"), "utf8"), /backuppolicies\/status/);
    const values = load(readFileSync(join(dir, "manifests/values.yaml"), "utf8")) as { plugins: string[] };
    assert.deepEqual(values.plugins, ["backup"], "the chart runs the plugin");
  });

  it("its rendered chart installs: the plugin's CRD, ServiceAccount, RBAC, Deployment and webhook configurations", async () => {
    // Helm does not wait for the Pods by default (Helm 4: --wait=hookOnly; --wait=false is deprecated there).
    await helm([
      "install",
      RELEASE,
      join(dir, "manifests"),
      "-n",
      NS,
      "--create-namespace",
      "--set",
      `image.repository=${IMAGE}`,
    ]);
    for (const path of [
      `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD}`,
      `/api/v1/namespaces/${NS}/serviceaccounts/${FULL}`,
      `/apis/rbac.authorization.k8s.io/v1/clusterroles/${FULL}-manager`,
      `/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/${FULL}-manager`,
      `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`,
      `/api/v1/namespaces/${NS}/services/${FULL}-webhook`,
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
    ])
      assert.ok(await readObject(rest, path), `helm install created ${path}`);
    // Only the plugin's kinds: kubeplug's built-in CRDs stay out of a plugin's chart.
    assert.equal(
      await readObject(rest, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/webapps.webapp.example.com"),
      undefined,
    );
    const deployment = (await readObject<Deployment>(rest, `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`)) as Deployment;
    const container = deployment.spec.template.spec.containers[0];
    assert.ok(container?.image?.startsWith(`${IMAGE}:`), `the image is set: ${container?.image}`);
    assert.equal(flag(container?.args ?? [], "plugins"), "backup");
    assert.equal(deployment.spec.template.spec.serviceAccountName, FULL);
  });

  describe("the operator run with the chart's ServiceAccount token", () => {
    let operator: HostOperator | undefined;
    let sa: ServiceAccountCredentials | undefined;
    let restoreWebhooks: (() => Promise<void>) | undefined;
    let healthUrl: string;
    let sample: KubeObject & { spec: { message: string; copies: number } };
    const configPaths = [
      `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${FULL}-mutating`,
      `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/${FULL}-validating`,
    ];

    before(async () => {
      sa = await serviceAccountKubeconfig(rest, cp, NS, FULL, work);
      // The API server cannot reach the in-cluster Service: point the chart's webhooks at the host.
      const [webhookPort, metricsPort, healthPort] = [await freePort(), await freePort(), await freePort()];
      restoreWebhooks = await pointWebhooksAtHost(rest, configPaths, webhookPort, `${FULL}-webhook`);
      const deployment = (await readObject<Deployment>(rest, `/apis/apps/v1/namespaces/${NS}/deployments/${FULL}`)) as Deployment;
      healthUrl = `http://127.0.0.1:${healthPort}`;
      // The image sets KUBEPLUG_PLUGIN to the package; here the package is the working directory.
      operator = runOperatorAsDeployment({
        deployment,
        namespace: NS,
        replace: {
          "webhook-bind-address": `127.0.0.1:${webhookPort}`,
          "metrics-bind-address": `127.0.0.1:${metricsPort}`,
          "health-probe-bind-address": `127.0.0.1:${healthPort}`,
        },
        extraArgs: ["--plugin", ".", "--webhook-hosts=127.0.0.1", `--kubeconfig=${sa.kubeconfigPath}`],
        command: join(dir, "node_modules/.bin/kubeplug"),
        cwd: dir,
        env: cleanEnv({ HOSTNAME, PATH: `${join(dir, "node_modules/.bin")}:${process.env.PATH ?? ""}` }),
        children,
      });
      await operator.running("the operator to be ready", async () => (await fetchText(`${healthUrl}/readyz`)).status === 200);
      await operator.running(
        "the operator to inject its CA into both webhook configurations",
        webhookCaInjected(rest, `/api/v1/namespaces/${NS}/secrets/${FULL}-webhook-tls`, configPaths),
      );
      sample = load(readFileSync(join(dir, "samples/backuppolicy.yaml"), "utf8")) as typeof sample;
      // The API server applies webhook configuration changes a moment later: until a valid object
      // passes both webhooks (failurePolicy Fail), it is still calling the Service or lacks the CA.
      await operator.running("the API server to call the operator's webhooks", async () => {
        await rest.request("POST", COLLECTION, { body: sample, query: { dryRun: "All" } });
        return true;
      });
    });

    after(async () => {
      await operator?.stop("SIGKILL");
      await sa?.rest.close();
      await restoreWebhooks?.();
    });

    it("is ready, running the plugin", async () => {
      const ready = await fetchText(`${healthUrl}/readyz?verbose`);
      assert.equal(ready.status, 200, ready.text);
      assert.match(ready.text, /\[\+\]plugins ok: running backup$/m);
    });

    it("reconciles the sample BackupPolicy into its ConfigMap and reports Ready", async (t) => {
      assert.equal(sample.metadata.namespace, "default");
      const created = await rest.request<KubeObject>("POST", COLLECTION, { body: sample });
      const cm = await waitFor(
        "the sample's ConfigMap",
        () => readObject<ConfigMap>(rest, objectPath(ConfigMapKind, "sample-backuppolicy", "default")),
        { timeoutMs: 60_000 },
      );
      assert.equal(cm.data?.message, sample.spec.message.repeat(sample.spec.copies));
      assert.equal(cm.data?.message, "hellohello");
      assert.ok(
        cm.metadata.ownerReferences?.some((r) => r.kind === "BackupPolicy" && r.uid === created.metadata.uid && r.controller),
        `the BackupPolicy owns its ConfigMap: ${JSON.stringify(cm.metadata.ownerReferences)}`,
      );
      await operator?.running("the sample to report Ready", async () => {
        const policy = await readObject<
          KubeObject & { status?: { observedGeneration?: number; conditions?: { type: string; status: string }[] } }
        >(rest, `${COLLECTION}/sample`);
        return (
          policy?.status?.observedGeneration === policy?.metadata.generation &&
          policy?.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true
        );
      });
      t.diagnostic(
        `kubeplug tarball: ${(tarballSize / 1024).toFixed(1)} KiB; the whole path took ${((performance.now() - started) / 1000).toFixed(1)} s`,
      );
    });

    it("denies an invalid BackupPolicy at admission", async () => {
      await assert.rejects(
        rest.request("POST", COLLECTION, {
          body: { ...sample, metadata: { name: "invalid", namespace: "default" }, spec: { message: "hello", copies: 9 } },
        }),
        (err: unknown) => {
          assert.ok(err instanceof ApiError, String(err));
          assert.equal(err.code, 422, err.message);
          assert.match(err.message, /admission webhook "[mv]backuppolicy\.backup\.example\.com" denied the request/);
          assert.match(err.message, /spec\.copies: Invalid value: 9: copies must be at most 5/);
          return true;
        },
      );
      assert.equal(await readObject(rest, `${COLLECTION}/invalid`), undefined, "nothing was stored");
    });

    it("is refused what the generated RBAC does not grant", async () => {
      const client = (sa as ServiceAccountCredentials).rest;
      const user = `system:serviceaccount:${NS}:${FULL}`;
      assert.equal(sa?.user, user);
      // What it is granted (the positive control for the refusals below).
      await client.request("GET", "/apis/backup.example.com/v1/backuppolicies");
      await client.request("GET", "/api/v1/namespaces/default/configmaps");
      await client.request("GET", `/api/v1/namespaces/${NS}/secrets/${FULL}-webhook-tls`);
      await assertForbidden(client, user, "GET", "/api/v1/secrets");
      await assertForbidden(client, user, "GET", "/api/v1/namespaces/default/secrets");
      // The backup plugin manages ConfigMaps only: no Deployments (kubeplug's webapp plugin would need them).
      await assertForbidden(client, user, "POST", "/apis/apps/v1/namespaces/default/deployments", {
        apiVersion: "apps/v1",
        kind: "Deployment",
        metadata: { name: "not-mine" },
        spec: {
          selector: { matchLabels: { app: "not-mine" } },
          template: { metadata: { labels: { app: "not-mine" } }, spec: { containers: [{ name: "c", image: IMAGE }] } },
        },
      });
      await assertForbidden(client, user, "DELETE", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD}`);
    });

    it("exits 0 on SIGTERM", async () => {
      assert.ok(operator, "the operator was started");
      const exit = await operator.stop("SIGTERM");
      assert.deepEqual(exit, { code: 0, signal: null }, operator.tail());
    });
  });
});

/** What of the chart's Deployment the test reads. */
interface Deployment extends KubeObject {
  spec: { template: { spec: { serviceAccountName?: string; containers: (DeploymentContainerLike & { image?: string })[] } } };
}

type ConfigMap = KubeObject & { data?: Record<string, string> };

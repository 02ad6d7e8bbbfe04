/**
 * Two managers side by side, one per team, each watching its own namespace (`--namespace`, the
 * chart's watchNamespaces): each admits and reconciles only its own namespace's objects. Their webhook
 * configurations select namespaces by the `kubernetes.io/metadata.name` label, which Kubernetes sets
 * from 1.21 on; this 1.20 API server does not, so the test labels the namespaces as a newer one would.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds, installWebhookConfigurations } from "../../cli/install.ts";
import { ApiError, collectionPath, DeploymentKind, NamespaceKind, objectPath, RestClient } from "../../core/runtime.ts";
import { webAppPlugin } from "../../plugins/webapp/index.ts";
import { type ControlPlane, ensureTools, freePort, startControlPlane, type Tools } from "../controlplane/index.ts";
import { fetchText, metricValue } from "../support/cluster.ts";
import { kubectlFor } from "../support/kubectl.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

const TEAMS = ["team-a", "team-b"] as const;

describe("two managers side by side, one per namespace", () => {
  let cp: ControlPlane;
  let tools: Tools;
  let rest: RestClient;
  const managers = new Map<string, TestManager>();
  const stop = new AbortController();

  before(async () => {
    [cp, tools] = await Promise.all([startControlPlane({ controllerManager: false }), ensureTools()]);
    rest = await RestClient.create(cp.kubeConfig);
    await installCrds(rest, [webAppPlugin]);
    for (const team of TEAMS) {
      await rest.request("POST", collectionPath(NamespaceKind), {
        body: { apiVersion: "v1", kind: "Namespace", metadata: { name: team, labels: { "kubernetes.io/metadata.name": team } } },
      });
      const port = await freePort();
      const tm = await startTestManager(cp.kubeconfigPath, [webAppPlugin], {
        flags: [
          "--namespace",
          team,
          "--webhook-bind-address",
          `127.0.0.1:${port}`,
          "--webhook-hosts",
          "127.0.0.1",
          "--webhook-configuration-name",
          team,
          "--webhook-secret-name",
          `${team}-webhook-tls`,
        ],
      });
      managers.set(team, tm);
      const configs = await installWebhookConfigurations(rest, tm.webhooks, {
        url: `https://127.0.0.1:${port}`,
        name: team,
        ownNamespace: "",
        watchNamespaces: tm.manager.config.namespaces,
        signal: stop.signal,
      });
      assert.equal(configs.length, 2, `${team}: both webhook configurations`);
    }
  });
  after(async () => {
    stop.abort();
    for (const team of TEAMS) {
      for (const type of ["mutating", "validating"]) {
        await rest
          ?.request("DELETE", `/apis/admissionregistration.k8s.io/v1/${type}webhookconfigurations/${team}-${type}`)
          .catch(() => undefined);
      }
    }
    for (const tm of managers.values()) await tm.stop();
    await rest?.close();
    await cp?.stop();
  });

  const webhookCalls = async (team: string) =>
    metricValue(
      (await fetchText((managers.get(team) as TestManager).metricsUrl)).text,
      "controller_runtime_webhook_requests_total",
    );

  it("each manager admits and reconciles only its own namespace", async () => {
    const { kubectl } = kubectlFor(
      () => tools.kubectl,
      () => cp,
    );
    for (const [mine, other] of [TEAMS, [...TEAMS].reverse()] as const) {
      const before = { mine: await webhookCalls(mine), other: await webhookCalls(other) };
      await rest.request("POST", `/apis/webapp.example.com/v1/namespaces/${mine}/webapps`, {
        body: { apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name: "site" }, spec: { image: "nginx:1.27" } },
      });
      const deployment = await waitFor(`the Deployment in ${mine}`, () =>
        rest
          .request<{ metadata: { ownerReferences?: { kind: string }[] } }>("GET", objectPath(DeploymentKind, "site", mine))
          .catch(() => undefined),
      );
      assert.equal(deployment.metadata.ownerReferences?.[0]?.kind, "WebApp");
      const stored = await rest.request<{ spec: { replicas?: number } }>(
        "GET",
        `/apis/webapp.example.com/v1/namespaces/${mine}/webapps/site`,
      );
      assert.equal(stored.spec.replicas, 1, "defaulted by a webhook");
      assert.ok((await webhookCalls(mine)) > before.mine, `${mine}'s manager admitted its WebApp`);
      assert.equal(await webhookCalls(other), before.other, `${other}'s manager was not called for ${mine}`);

      const denied = await rest
        .request("POST", `/apis/webapp.example.com/v1/namespaces/${mine}/webapps`, {
          body: {
            apiVersion: "webapp.example.com/v1",
            kind: "WebApp",
            metadata: { name: "bad" },
            spec: { image: "nginx:1.27", replicas: 11 },
          },
          query: { dryRun: "All" },
        })
        .then(
          () => undefined,
          (err: unknown) => err,
        );
      assert.ok(denied instanceof ApiError && denied.code === 422, `an invalid WebApp in ${mine} is denied`);
      assert.equal(await webhookCalls(other), before.other, `${other}'s manager was not called for ${mine}'s invalid WebApp`);
      const otherCache = (managers.get(other) as TestManager).manager.cache.informer(DeploymentKind).list({ namespace: mine });
      assert.deepEqual(otherCache, [], `${other}'s manager caches nothing of ${mine}`);
    }
    // The same for a user: kubectl in team-b goes to team-b's manager only.
    const before = await webhookCalls("team-a");
    const run = await kubectl(["-n", "team-b", "patch", "webapp", "site", "--type=merge", "-p", '{"spec":{"replicas":2}}']);
    assert.equal(run.code, 0, run.stderr);
    assert.equal(await webhookCalls("team-a"), before);
  });
});

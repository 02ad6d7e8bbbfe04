/**
 * A plugin written outside this repository, the way its author would: `npm pack` kubeplug, scaffold
 * a standalone package on the tarball, `npm install` and `npm test` in it (on kubeplug/testing and
 * a local control plane), build and generate its manifests, then `kubeplug run --plugin` from the
 * package's own kubeplug reconciles its sample and its webhooks refuse an invalid object.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { load } from "js-yaml";
import { ApiError, ConfigMapKind, objectPath, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, freePort, startControlPlane } from "../controlplane/index.ts";
import { fetchText } from "../support/cluster.ts";
import { packKubeplug } from "../support/pack.ts";
import { waitFor } from "../support/wait.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");

/** The environment of a child that runs its own `node --test`: without NODE_TEST_CONTEXT, which would make it report to us in its wire format. */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...extra };
  delete env.NODE_TEST_CONTEXT;
  return env;
}

describe("a plugin published outside the repository", () => {
  let work: string;
  let cp: ControlPlane;
  let manager: ChildProcess | undefined;
  before(async () => {
    work = mkdtempSync(join(tmpdir(), "kubeplug-external-"));
    cp = await startControlPlane({ controllerManager: false });
  });
  after(async () => {
    if (manager && manager.exitCode === null && manager.signalCode === null) {
      const exited = new Promise((r) => manager?.once("exit", r));
      manager.kill("SIGTERM");
      await exited;
    }
    await cp?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("packs, scaffolds, installs, tests, builds and runs with kubeplug run --plugin", async (t) => {
    const started = performance.now();
    const tarball = await packKubeplug(work);
    const size = statSync(tarball).size;
    const dir = join(work, "backup");
    await run(process.execPath, [
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

    await run("npm", ["install", "--no-audit", "--no-fund"], { cwd: dir, env: childEnv(), maxBuffer: 16 * 2 ** 20 });
    const test = await run("npm", ["test"], { cwd: dir, env: childEnv(), maxBuffer: 16 * 2 ** 20 });
    assert.match(test.stdout, /ℹ pass 1/);
    assert.match(test.stdout, /ℹ fail 0/);
    await run("npm", ["run", "build"], { cwd: dir, env: childEnv() });
    assert.ok(existsSync(join(dir, "dist/index.d.ts")), "type declarations are built");
    await run("npm", ["run", "manifests"], { cwd: dir, env: childEnv() });
    assert.ok(existsSync(join(dir, "manifests/crds/backuppolicies.backup.example.com.yaml")), "the CRD is generated");
    assert.match(readFileSync(join(dir, "manifests/templates/rbac-generated.yaml"), "utf8"), /backuppolicies\/status/);

    const [health, webhook] = [await freePort(), await freePort()];
    manager = spawn(
      join(dir, "node_modules/.bin/kubeplug"),
      [
        "run",
        "--plugin",
        ".",
        "--plugins=",
        "--install",
        "--kubeconfig",
        cp.kubeconfigPath,
        "--metrics-bind-address",
        "0",
        "--health-probe-bind-address",
        `127.0.0.1:${health}`,
        "--webhook-bind-address",
        `127.0.0.1:${webhook}`,
      ],
      { cwd: dir, env: childEnv({ PATH: `${join(dir, "node_modules/.bin")}:${process.env.PATH ?? ""}` }), stdio: "ignore" },
    );
    const ready = await waitFor(
      "the manager to be ready with the plugin",
      async () => {
        const r = await fetchText(`http://127.0.0.1:${health}/readyz?verbose`).catch(() => undefined);
        return r?.status === 200 ? r.text : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.match(ready, /\[\+\]plugins ok: running backup$/m);

    const rest = await RestClient.create(cp.kubeConfig);
    try {
      const sample = load(readFileSync(join(dir, "samples/backuppolicy.yaml"), "utf8")) as { metadata: { name: string } };
      const collection = "/apis/backup.example.com/v1/namespaces/default/backuppolicies";
      // The webhook configurations are registered once the server serves; until then a create is not checked.
      await waitFor("the webhooks to refuse an invalid BackupPolicy", async () => {
        const err = await rest
          .request("POST", collection, {
            body: { ...(sample as object), metadata: { name: "invalid" }, spec: { message: "", copies: 9 } },
            query: { dryRun: "All" },
          })
          .then(
            () => undefined,
            (e: unknown) => e,
          );
        return err instanceof ApiError &&
          err.code === 422 &&
          /spec\.copies: Invalid value: 9: copies must be at most 5/.test(err.message)
          ? err
          : undefined;
      });
      await rest.request("POST", collection, { body: sample });
      const cm = await waitFor("the sample's ConfigMap", () =>
        rest
          .request<{ data?: Record<string, string> }>("GET", objectPath(ConfigMapKind, "sample-backuppolicy", "default"))
          .catch(() => undefined),
      );
      assert.equal(cm.data?.message, "hellohello");
    } finally {
      await rest.close();
    }
    t.diagnostic(
      `kubeplug tarball: ${(size / 1024).toFixed(1)} KiB; the whole path took ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
  });
});

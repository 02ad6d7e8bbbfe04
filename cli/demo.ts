/**
 * `kubeplug demo`: the whole platform in one command. Without --kubeconfig it starts the local
 * control plane (building it on first use, with progress), installs the CRDs, runs the manager with
 * the WebApp plugin, applies a sample WebApp, stands in for kubelets so its pods become ready, and
 * prints `kubectl get webapp,deployment,service` as it converges. Ctrl-C stops everything it started.
 */
import { execFile } from "node:child_process";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { parseManagerConfig, sleep } from "../core/runtime.ts";
import { WebAppKind } from "../plugins/webapp/index.ts";
import { plugins } from "./builtin-plugins.ts";
import { buildManager } from "./compose.ts";
import { installCrds, installWebhookConfigurations } from "./install.ts";
import { packageRoot } from "./paths.ts";

const run = promisify(execFile);
const root = packageRoot;
const SAMPLE = join(root, "plugins/webapp/samples/webapp.yaml");
const BAD_SAMPLE = join(root, "plugins/webapp/samples/invalid-webapp.yaml");
/**
 * The local control-plane harness lives in test/ and ships only in a checkout, not in the package or
 * the image; the specifier is computed so the compiler neither follows nor bundles it.
 */
const HARNESS = ["..", "test", "controlplane", "index.ts"].join("/");
interface Harness {
  ensureTools(): Promise<{ kubectl: string }>;
  freePort(): Promise<number>;
  startControlPlane(): Promise<{
    kubeconfigPath: string;
    kubeConfig: import("@kubernetes/client-node").KubeConfig;
    server: string;
    stop(): Promise<void>;
  }>;
  startPodReadiness(kc: import("@kubernetes/client-node").KubeConfig): { stop(): Promise<void> };
}

const say = (line: string) => process.stdout.write(`${line}\n`);

const HELP = `Usage: kubeplug demo [--kubeconfig FILE]

Without --kubeconfig: starts a local control plane (etcd, kube-apiserver, kube-controller-manager;
built from source into ~/.cache/kubeplug on first use), and marks pods ready since it has no kubelet.
With --kubeconfig: uses that cluster (its own kubelets run the pods).
Then installs the WebApp CRD, runs the operator, applies ${join("plugins/webapp/samples/webapp.yaml")}
and shows it converge. Ctrl-C stops everything the demo started.
`;

/** Runs the demo; resolves with the exit code after Ctrl-C. */
export async function runDemo(argv: string[]): Promise<number> {
  let values: { kubeconfig?: string; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { kubeconfig: { type: "string" }, help: { type: "boolean", short: "h" } },
      strict: true,
    }));
  } catch (err) {
    process.stderr.write(`kubeplug demo: ${(err as Error).message}\n\n${HELP}`);
    return 2;
  }
  if (values.help) {
    process.stdout.write(HELP);
    return 0;
  }
  const stop = new AbortController();
  const cleanups: (() => Promise<void>)[] = [];
  const onSignal = () => stop.abort();
  process.on("SIGINT", onSignal);
  process.on("SIGTERM", onSignal);
  const started = Date.now();
  try {
    let kubeconfigPath = values.kubeconfig;
    let kubectl = "kubectl";
    let local: Harness | undefined;
    try {
      local = (await import(HARNESS)) as Harness;
      kubectl = (await local.ensureTools()).kubectl;
    } catch (err) {
      if (!kubeconfigPath)
        throw new Error(
          `the local control plane is only available in a kubeplug checkout; pass --kubeconfig (${(err as Error).message})`,
        );
    }
    if (!kubeconfigPath) {
      say("==> Starting a local control plane (etcd, kube-apiserver, kube-controller-manager)");
      const cp = await (local as Harness).startControlPlane();
      cleanups.push(() => cp.stop());
      kubeconfigPath = cp.kubeconfigPath;
      say(`    ready in ${((Date.now() - started) / 1000).toFixed(1)} s at ${cp.server}`);
      const readiness = (local as Harness).startPodReadiness(cp.kubeConfig);
      cleanups.unshift(() => readiness.stop());
      say("    (no kubelet here: the demo marks pods Running and Ready, as kwok does)");
    }
    const webhookPort = local ? await local.freePort() : 9443;
    const { config } = parseManagerConfig([
      "--kubeconfig",
      kubeconfigPath,
      "--metrics-bind-address",
      "127.0.0.1:0",
      "--health-probe-bind-address",
      "127.0.0.1:0",
      "--webhook-bind-address",
      `127.0.0.1:${webhookPort}`,
      "--webhook-hosts",
      "127.0.0.1,localhost",
      "--log-level",
      "warn",
      "--plugins",
      "webapp",
    ]);
    const { manager, webhooks } = await buildManager({ config, plugins });
    say("==> Installing the WebApp CRD");
    const crds = await installCrds(
      manager.client.rest,
      plugins.filter((p) => p.name === "webapp"),
    );
    say(`    ${crds.join(", ")}`);
    say(`==> Running the kubeplug manager with the webapp plugin (admission webhooks on https://127.0.0.1:${webhookPort})`);
    const managerRun = manager.start(stop.signal);
    cleanups.unshift(async () => {
      await managerRun;
    });
    const configs = await installWebhookConfigurations(manager.client.rest, webhooks, {
      url: `https://127.0.0.1:${webhookPort}`,
      name: config.webhookConfigurationName,
      ownNamespace: "", // on a host: exclude no namespace (the sample lives in default)
      signal: stop.signal,
    });
    say(`    ${configs.join(", ")}`);
    const kc = ["--kubeconfig", kubeconfigPath];
    say(`==> kubectl apply -f plugins/webapp/samples/webapp.yaml`);
    const applied = await run(kubectl, [...kc, "apply", "-f", SAMPLE]);
    process.stdout.write(`    ${applied.stdout}`);
    const appliedAt = Date.now();
    let last = "";
    let converged = false;
    say("==> Watching it converge (kubectl get webapp,deployment,service)");
    while (!stop.signal.aborted) {
      const { stdout } = await run(kubectl, [...kc, "get", "webapp/hello", "deployment/hello", "service/hello"]).catch(
        (e: { stdout?: string; stderr?: string }) => ({ stdout: `${e.stdout ?? ""}${e.stderr ?? ""}` }),
      );
      // AGE changes every second: print only when something else changed.
      const shape = stdout.replace(/\s+\S+$/gm, "");
      if (shape !== last) {
        say(`\n[${((Date.now() - appliedAt) / 1000).toFixed(1)} s]`);
        process.stdout.write(stdout);
        last = shape;
      }
      if (!converged) {
        const app = await manager.client.get(WebAppKind, "hello", "default");
        if (app && app.status?.availableReplicas === app.spec.replicas) {
          converged = true;
          say(
            `\n==> Converged: ${app.spec.replicas}/${app.spec.replicas} replicas available ${((Date.now() - appliedAt) / 1000).toFixed(1)} s after kubectl apply.`,
          );
          const bad = await run(kubectl, [...kc, "apply", "-f", BAD_SAMPLE]).catch((e: { stderr?: string }) => ({
            stdout: "",
            stderr: e.stderr ?? "",
          }));
          say("\n==> An invalid WebApp (replicas: 11, port: 70000, image: Not_An_Image) is rejected at admission:");
          say(`    ${bad.stderr?.trim() || "(accepted?!)"}`);
          say(`\n    Try it (in another terminal):
      export KUBECONFIG=${kubeconfigPath}
      ${kubectl} scale deployment hello --replicas=5     # put back to 2
      ${kubectl} delete deployment hello                # recreated
      ${kubectl} patch webapp hello --type=merge -p '{"spec":{"replicas":3}}'
    Ctrl-C stops everything the demo started.`);
        }
      }
      await sleep(1000, stop.signal);
    }
    say("\n==> Stopping");
    return 0;
  } catch (err) {
    process.stderr.write(`kubeplug demo: ${err instanceof Error ? err.message : String(err)}\n`);
    return 1;
  } finally {
    stop.abort();
    for (const cleanup of cleanups) await cleanup().catch(() => undefined);
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

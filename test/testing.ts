/**
 * `kubeplug/testing`, the envtest of kubeplug: a real local control plane (etcd, kube-apiserver and,
 * optionally, kube-controller-manager; built once from Debian's Kubernetes source into
 * ~/.cache/kubeplug with progress shown, or taken from KUBEBUILDER_ASSETS), a manager running given
 * plugins against it, a stand-in for kubelets that marks pods ready, and waiting helpers.
 *
 *   const cp = await startControlPlane({ controllerManager: false });
 *   await installCrds(cp, [myPlugin]);
 *   const tm = await startManager(cp, [myPlugin]);
 *   ...
 *   await tm.stop(); await cp.stop();
 */

import { installCrds as install } from "../cli/install.ts";
import type { Plugin } from "../core/runtime.ts";
import { RestClient } from "../core/runtime.ts";
import type { ControlPlane } from "./controlplane/index.ts";
import { startTestManager, type TestManager } from "./support/manager.ts";

export {
  type ControlPlane,
  type ControlPlaneOptions,
  ensureBinaries,
  freePort,
  markPodsReady,
  type PodReadiness,
  startControlPlane,
  startPodReadiness,
} from "./controlplane/index.ts";
export type { TestManager } from "./support/manager.ts";
export { waitFor } from "./support/wait.ts";

/** Applies the plugins' CRDs to the control plane and waits until they are served. */
export async function installCrds(cp: ControlPlane, plugins: readonly Plugin[]): Promise<string[]> {
  const rest = await RestClient.create(cp.kubeConfig);
  try {
    return await install(rest, plugins);
  } finally {
    await rest.close();
  }
}

/**
 * Starts a manager in this process with `plugins` against the control plane, metrics and health on
 * free ports, no webhook server unless `flags` asks for one (`--webhook-bind-address`). `flags` are
 * `kubeplug run` flags. Stop it with `stop()`.
 */
export function startManager(
  cp: ControlPlane,
  plugins: readonly Plugin[],
  options: { flags?: string[] } = {},
): Promise<TestManager> {
  return startTestManager(cp.kubeconfigPath, plugins, options.flags ? { flags: options.flags } : {});
}

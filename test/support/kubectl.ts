/** kubectl against a test control plane, asynchronously (never spawnSync: a webhook server may run in the test process). */
import assert from "node:assert/strict";
import { join } from "node:path";
import { exec, type Run } from "./exec.ts";

export type { Run } from "./exec.ts";

/** Returns `kubectl(args, input)` and `kubectlOk(args, input)` bound to a kubectl binary and a control plane. */
export function kubectlFor(binary: () => string, cp: () => { kubeconfigPath: string; dir: string }) {
  const kubectl = (args: string[], input?: string): Promise<Run> => {
    const { kubeconfigPath, dir } = cp();
    return exec(binary(), ["--kubeconfig", kubeconfigPath, "--cache-dir", join(dir, "kubectl-cache"), ...args], {
      ...(input !== undefined ? { input } : {}),
    });
  };
  const kubectlOk = async (args: string[], input?: string): Promise<string> => {
    const run = await kubectl(args, input);
    assert.equal(run.code, 0, `kubectl ${args.join(" ")} failed: ${run.stderr}`);
    return run.stdout;
  };
  return { kubectl, kubectlOk };
}

/** kubectl against a test control plane, asynchronously (never spawnSync: a webhook server may run in the test process). */
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { join } from "node:path";

/** What a kubectl run printed and how it ended. */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Returns `kubectl(args, input)` and `kubectlOk(args, input)` bound to a kubectl binary and a control plane. */
export function kubectlFor(binary: () => string, cp: () => { kubeconfigPath: string; dir: string }) {
  const kubectl = (args: string[], input?: string): Promise<Run> =>
    new Promise((resolve, reject) => {
      const { kubeconfigPath, dir } = cp();
      const child = spawn(binary(), ["--kubeconfig", kubeconfigPath, "--cache-dir", join(dir, "kubectl-cache"), ...args], {
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (d: string) => {
        stdout += d;
      });
      child.stderr.setEncoding("utf8").on("data", (d: string) => {
        stderr += d;
      });
      child.on("error", reject);
      child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
      child.stdin.end(input ?? "");
    });
  const kubectlOk = async (args: string[], input?: string): Promise<string> => {
    const run = await kubectl(args, input);
    assert.equal(run.code, 0, `kubectl ${args.join(" ")} failed: ${run.stderr}`);
    return run.stdout;
  };
  return { kubectl, kubectlOk };
}

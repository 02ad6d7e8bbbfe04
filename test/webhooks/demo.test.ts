/**
 * `kubeplug demo` as a user runs it: `bin/kubeplug demo` starts its own control plane, converges the
 * sample WebApp, shows the admission webhook denying the invalid sample, and Ctrl-C (SIGINT to its
 * process group, as a terminal sends it) ends it with exit code 0 and nothing left running.
 */
import assert from "node:assert/strict";
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { after, describe, it } from "node:test";
import { promisify } from "node:util";
import { waitFor } from "../support/wait.ts";

const BIN = join(import.meta.dirname, "../../bin/kubeplug");
const run = promisify(execFile);

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Processes (not zombies) whose command line mentions `text`, as `pid args` lines. */
async function processesMentioning(text: string): Promise<string[]> {
  const { stdout } = await run("ps", ["-eo", "pid=,stat=,args="], { maxBuffer: 16 * 1024 * 1024 });
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(
      ([pid, stat, ...args]) => pid && !stat?.startsWith("Z") && Number(pid) !== process.pid && args.join(" ").includes(text),
    )
    .map(([pid, , ...args]) => `${pid} ${args.join(" ").slice(0, 160)}`);
}

/** Which of `pids` still run (zombies count as ended). */
async function running(pids: number[]): Promise<number[]> {
  const { stdout } = await run("ps", ["-o", "pid=,stat=", "-p", pids.join(",")]).catch((err: { stdout?: string }) => ({
    stdout: err.stdout ?? "", // ps exits 1 when none of the pids exists
  }));
  return stdout
    .split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter(([pid, stat]) => pid && !stat?.startsWith("Z"))
    .map(([pid]) => Number(pid));
}

describe("kubeplug demo", () => {
  let child: ChildProcess | undefined;
  let exit: Exit | undefined;
  let exited: Promise<Exit> | undefined;
  let stdout = "";
  let stderr = "";

  after(async () => {
    // Still running after a failure: end its whole process group (the demo's own exit hook and
    // watchdog then stop the control plane it started).
    if (child?.pid && !exit) {
      try {
        process.kill(-child.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
      await exited;
    }
  });

  /** waitFor that gives up at once, with the demo's output, when it exits. */
  async function waitWhileRunning<T>(what: string, check: () => T | undefined | false, timeoutMs: number): Promise<T> {
    const value = await waitFor<T | "exited">(what, () => (exit ? "exited" : check()), { timeoutMs, intervalMs: 200 });
    if (value === "exited") {
      assert.fail(`the demo exited (${JSON.stringify(exit)}) while waiting for ${what}:\n${stdout}\n${stderr}`);
    }
    return value as T;
  }

  it("converges, shows the denial naming each bad field, and exits 0 on Ctrl-C leaving nothing running", async (t) => {
    // The demo reads KUBEPLUG_* and POD_NAMESPACE; keep the caller's settings out of it.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith("KUBEPLUG_") && k !== "POD_NAMESPACE" && k !== "KUBECONFIG"),
    );
    // Its own process group, like a job in a terminal: Ctrl-C goes to the whole group.
    child = spawn(BIN, ["demo"], { detached: true, stdio: ["ignore", "pipe", "pipe"], env });
    exited = new Promise((resolve) => {
      child?.on("exit", (code, signal) => {
        exit = { code, signal };
        resolve(exit);
      });
    });
    child.stdout?.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr?.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });

    const converged = await waitWhileRunning("the demo to converge", () => /^==> Converged: .*$/m.exec(stdout)?.[0], 300_000);
    t.diagnostic(converged);
    const denial = await waitWhileRunning(
      "the admission denial",
      () => /is rejected at admission:\n([\s\S]*?)\n\n {4}Try it/.exec(stdout)?.[1],
      60_000,
    );
    t.diagnostic(denial.trim());
    assert.match(denial, /The WebApp "broken" is invalid/);
    assert.match(denial, /^\* spec\.replicas: Invalid value: 11: replicas must be between 1 and 10$/m);
    assert.match(denial, /^\* spec\.port: Invalid value: 70000: port must be between 1 and 65535$/m);
    assert.match(denial, /^\* spec\.image: Invalid value: "Not_An_Image": image must be a container image reference/m);

    // The control plane it started: the kubeconfig it printed lives in the control plane's directory,
    // beside the `pids` file of etcd, kube-apiserver and kube-controller-manager.
    const kubeconfig = /export KUBECONFIG=(\S+)/.exec(stdout)?.[1];
    assert.ok(kubeconfig, `the demo printed its kubeconfig:\n${stdout}`);
    const dir = dirname(kubeconfig);
    const pids = readFileSync(join(dir, "pids"), "utf8").trim().split(/\s+/).map(Number);
    assert.equal(pids.length, 3, "etcd, kube-apiserver, kube-controller-manager");
    const sorted = (list: number[]) => [...list].sort((a, b) => a - b);
    assert.deepEqual(sorted(await running(pids)), sorted(pids), "the control plane runs while the demo does");
    const before = await processesMentioning(dir);
    assert.ok(
      before.some((line) => / \S*etcd /.test(line)) && before.some((line) => /kube-apiserver /.test(line)),
      before.join("\n"),
    );

    const signalled = performance.now();
    process.kill(-(child.pid as number), "SIGINT");
    const result = await waitFor("the demo to exit", () => exit, { timeoutMs: 60_000, intervalMs: 20 });
    t.diagnostic(`exited ${(performance.now() - signalled).toFixed(0)} ms after SIGINT`);
    assert.deepEqual(result, { code: 0, signal: null }, `${stdout}\n${stderr}`);
    assert.match(stdout, /^==> Stopping$/m);
    if (stderr) t.diagnostic(`stderr: ${stderr.trim()}`);
    assert.doesNotMatch(stderr, /kubeplug demo: |\n\s+at /, "no error and no stack trace");

    const left = await waitFor(
      "the control plane's processes to be gone",
      async () => {
        const still = [...(await running(pids)).map(String), ...(await processesMentioning(dir))];
        return still.length === 0 ? [] : false;
      },
      { timeoutMs: 15_000 },
    ).catch(async (err: Error) => [`${err.message}`, ...(await processesMentioning(dir))]);
    assert.deepEqual(left, [], "no etcd, kube-apiserver or watchdog of the demo remains");
    assert.equal(existsSync(dir), false, `${dir} was removed`);
  });
});

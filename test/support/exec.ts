/**
 * Running a command to its end from a test: its output collected, its process tracked so the test can
 * kill it (and its group, when detached) if it outlives the test. Asynchronous, never spawnSync: a
 * webhook server or manager may run in the test process and must keep answering.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";

/** What a run printed and how it ended (-1: killed by a signal). */
export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options of {@link exec}. */
export interface ExecOptions {
  cwd?: string;
  env?: NodeJS.ProcessEnv;
  /** Written to stdin, which is then closed. */
  input?: string;
  /** In a process group of its own (so `process.kill(-pid)` reaches its children too). */
  detached?: boolean;
  /** The child is in this set while it runs. */
  track?: Set<ChildProcess>;
}

/** Runs `command` to its end; never rejects on a non-zero exit (see {@link execOk}). */
export function exec(command: string, args: readonly string[], options: ExecOptions = {}): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      ...(options.cwd ? { cwd: options.cwd } : {}),
      env: options.env ?? process.env,
      stdio: ["pipe", "pipe", "pipe"],
      detached: options.detached ?? false,
    });
    options.track?.add(child);
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (d: string) => {
      stdout += d;
    });
    child.stderr.setEncoding("utf8").on("data", (d: string) => {
      stderr += d;
    });
    child.on("error", (err) => {
      options.track?.delete(child);
      reject(err);
    });
    child.on("close", (code) => {
      options.track?.delete(child);
      resolve({ code: code ?? -1, stdout, stderr });
    });
    child.stdin.end(options.input ?? "");
  });
}

/** Runs `command` and fails, with the end of its output, unless it exits 0; resolves with its stdout. */
export async function execOk(command: string, args: readonly string[], options: ExecOptions = {}): Promise<string> {
  const run = await exec(command, args, options);
  assert.equal(
    run.code,
    0,
    `${command} ${args.join(" ")} exited ${run.code}:\n${run.stdout.slice(-3000)}\n${run.stderr.slice(-3000)}`,
  );
  return run.stdout;
}

/**
 * Starts child processes so that none outlives its owner.
 *
 * Guarantees: every process started through a ProcessGroup runs in its own process group and is
 * ended by `stop()`; if the owning Node process exits, throws, or gets SIGINT/SIGTERM, an exit hook
 * kills them synchronously; if the owner is SIGKILLed (no hook runs), a detached watchdog shell
 * notices within half a second, kills them and removes the group's directory.
 */
import { type ChildProcess, spawn } from "node:child_process";
import { closeSync, openSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const live = new Set<ProcessGroup>();
let hooksInstalled = false;

function killAllNow(): void {
  for (const group of live) group.killNow();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", killAllNow);
  for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    const onSignal = () => {
      killAllNow();
      // Only this hook listens: keep the default meaning of the signal (end the process).
      if (process.listenerCount(signal) === 1) process.exit(128 + (signal === "SIGINT" ? 2 : signal === "SIGTERM" ? 15 : 1));
    };
    process.on(signal, onSignal);
  }
}

/** A started process with its log file. */
export interface Started {
  name: string;
  /** The current process; replaced by {@link ProcessGroup.restart}. */
  child: ChildProcess;
  logFile: string;
  /** Resolves with the exit code (or signal name) when the process ends. */
  exited: Promise<number | string>;
}

/** A set of processes and one directory that live and die together. */
export class ProcessGroup {
  private readonly processes: Started[] = [];
  private watchdog: ChildProcess | undefined;
  private stopped = false;

  /** @param dir a directory this group owns; removed on stop. */
  readonly dir: string;
  constructor(dir: string) {
    this.dir = dir;
    installHooks();
    live.add(this);
  }

  private readonly commands = new Map<Started, { command: string; args: string[]; env: NodeJS.ProcessEnv }>();

  /** Starts `command` with its output in `<dir>/<name>.log`. */
  start(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = process.env): Started {
    if (this.stopped) throw new Error(`process group ${this.dir} is stopped`);
    const logFile = join(this.dir, `${name}.log`);
    const started: Started = { name, logFile, ...this.spawn(logFile, command, args, env) };
    this.commands.set(started, { command, args, env });
    this.processes.push(started);
    this.writePids();
    return started;
  }

  private spawn(logFile: string, command: string, args: string[], env: NodeJS.ProcessEnv) {
    const fd = openSync(logFile, "a");
    const child = spawn(command, args, { detached: true, stdio: ["ignore", fd, fd], env });
    closeSync(fd);
    const exited = new Promise<number | string>((resolve) => {
      child.on("exit", (code, signal) => resolve(code ?? signal ?? "unknown"));
      child.on("error", (err) => resolve(`spawn error: ${err.message}`));
    });
    return { child, exited };
  }

  /** SIGKILLs one started process (its whole process group) and resolves once it has exited. */
  async kill(started: Started): Promise<void> {
    if (started.child.exitCode === null && started.child.signalCode === null && started.child.pid) {
      try {
        process.kill(-started.child.pid, "SIGKILL");
      } catch {
        // gone meanwhile
      }
    }
    await started.exited;
    this.writePids();
  }

  /** Starts a killed (or exited) process again with the same command, arguments and log file. */
  restart(started: Started): void {
    if (this.stopped) throw new Error(`process group ${this.dir} is stopped`);
    if (started.child.exitCode === null && started.child.signalCode === null) {
      throw new Error(`${started.name} is still running (pid ${started.child.pid}); kill it first`);
    }
    const spec = this.commands.get(started);
    if (!spec) throw new Error(`${started.name} was not started by this group`);
    Object.assign(started, this.spawn(started.logFile, spec.command, spec.args, spec.env));
    this.writePids();
  }

  /** Pids of the live processes this group started. */
  pids(): number[] {
    return this.processes
      .filter((p) => p.child.exitCode === null && p.child.signalCode === null && p.child.pid)
      .map((p) => p.child.pid as number);
  }

  private writePids(): void {
    writeFileSync(join(this.dir, "pids"), `${this.pids().join(" ")}\n`);
    if (this.watchdog) return;
    // The watchdog outlives a SIGKILLed owner: it polls the owner's pid, then kills each process
    // group listed in the pids file and removes the directory.
    const script = `while kill -0 ${process.pid} 2>/dev/null; do sleep 0.5; done
for p in $(cat "${this.dir}/pids" 2>/dev/null); do kill -9 -$p 2>/dev/null; done
sleep 0.2; rm -rf "${this.dir}"`;
    this.watchdog = spawn("sh", ["-c", script], { detached: true, stdio: "ignore" });
    this.watchdog.unref();
  }

  /** SIGKILLs everything at once and removes the directory (for exit hooks: synchronous). */
  killNow(): void {
    for (const p of this.processes) {
      if (p.child.exitCode === null && p.child.pid) {
        try {
          process.kill(-p.child.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    }
    this.finish();
  }

  private finish(): void {
    this.stopped = true;
    live.delete(this);
    if (this.watchdog?.pid) {
      try {
        process.kill(-this.watchdog.pid, "SIGKILL");
      } catch {
        // already gone
      }
    }
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** Stops the processes in reverse start order: SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.stopped) return;
    for (const p of [...this.processes].reverse()) {
      if (p.child.exitCode !== null || p.child.signalCode !== null || !p.child.pid) continue;
      const pid = p.child.pid;
      try {
        process.kill(-pid, "SIGTERM");
      } catch {
        continue;
      }
      const timer = setTimeout(() => {
        try {
          process.kill(-pid, "SIGKILL");
        } catch {
          // gone meanwhile
        }
      }, graceMs);
      await p.exited;
      clearTimeout(timer);
    }
    this.finish();
  }
}

/** Shared pieces of the benchmarks: processes, bulk writes, convergence tracking, statistics. */
import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { Informer, type Kind, type KubeObject, objectKey, type RestClient } from "../../core/runtime.ts";

/** Percentile (nearest rank) of a list of numbers. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] as number;
}

/** Median (the mean of the middle two for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? (sorted[mid] as number) : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/** Resident set size of a process in bytes (Linux /proc). */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? Number.NaN);
  return kb * 1024;
}

/** Runs `fn` over `items` with at most `concurrency` in flight. */
export async function pool<T>(
  items: readonly T[],
  concurrency: number,
  fn: (item: T, index: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, items.length) }, worker));
}

/** Creates objects through the REST client with bounded concurrency; returns when all exist. */
export async function createAll(
  rest: RestClient,
  path: (obj: KubeObject) => string,
  objs: readonly KubeObject[],
  concurrency = 32,
): Promise<void> {
  await pool(objs, concurrency, async (obj) => {
    for (let attempt = 0; ; attempt++) {
      try {
        await rest.request("POST", path(obj), { body: obj });
        return;
      } catch (err) {
        if (attempt >= 5) throw err;
        await new Promise((r) => setTimeout(r, 100 * 2 ** attempt));
      }
    }
  });
}

/** A child process the benchmark owns; killed (process group) by `stop()` or at exit. */
export class Managed {
  readonly child: ChildProcess;
  readonly name: string;
  output = "";
  private readonly exited: Promise<number | null>;
  private static readonly live = new Set<Managed>();
  /** Whether the exit hook that kills what is still running is installed (once per process). */
  private static hooked = false;

  constructor(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}) {
    this.name = name;
    this.child = spawn(command, args, { detached: true, stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    const keep = (d: Buffer) => {
      this.output = (this.output + d.toString()).slice(-20_000);
    };
    this.child.stdout?.on("data", keep);
    this.child.stderr?.on("data", keep);
    this.exited = new Promise((resolve) => this.child.on("exit", (code) => resolve(code)));
    Managed.live.add(this);
    // Once: hooking each time the set fills again added a listener per round (node warned past 10).
    if (!Managed.hooked) {
      Managed.hooked = true;
      process.once("exit", () => Managed.killAll());
    }
  }

  get pid(): number {
    return this.child.pid as number;
  }

  static killAll(): void {
    for (const m of Managed.live) {
      try {
        process.kill(-m.pid, "SIGKILL");
      } catch {
        // gone
      }
    }
  }

  /** SIGTERM, then SIGKILL after 10 s; resolves with the exit code. */
  async stop(): Promise<number | null> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) {
      Managed.live.delete(this);
      return this.child.exitCode;
    }
    try {
      process.kill(-this.pid, "SIGTERM");
    } catch {
      // gone
    }
    const timer = setTimeout(() => {
      try {
        process.kill(-this.pid, "SIGKILL");
      } catch {
        // gone
      }
    }, 10_000);
    const code = await this.exited;
    clearTimeout(timer);
    Managed.live.delete(this);
    return code;
  }
}

/**
 * Watches a kind and records, per object key, the first time a condition held. Used to time
 * convergence without polling the API server.
 */
export class Tracker<T extends KubeObject> {
  readonly informer: Informer<T>;
  readonly reached = new Map<string, number>();
  private waiters: { count: number; resolve: () => void }[] = [];
  private readonly abort = new AbortController();
  private readonly run: Promise<void>;

  constructor(
    rest: RestClient,
    kind: Kind<T>,
    condition: (obj: T) => boolean,
    options: { namespace?: string; key?: (obj: T) => string } = {},
  ) {
    this.informer = new Informer(rest, kind, { ...(options.namespace ? { namespace: options.namespace } : {}), pageSize: 1000 });
    const key = options.key ?? objectKey;
    const check = (obj: T) => {
      const k = key(obj);
      if (!this.reached.has(k) && condition(obj)) {
        this.reached.set(k, performance.now());
        this.waiters = this.waiters.filter((w) => {
          if (this.reached.size >= w.count) w.resolve();
          return this.reached.size < w.count;
        });
      }
    };
    this.informer.addHandler({ onAdd: check, onUpdate: (_o, n) => check(n) });
    this.run = this.informer.start(this.abort.signal);
  }

  /** Resolves when `count` objects have reached the condition. */
  waitFor(count: number, timeoutMs: number): Promise<void> {
    if (this.reached.size >= count) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${this.reached.size}/${count} converged after ${timeoutMs} ms`)),
        timeoutMs,
      );
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Forgets what was reached (to time the next round). */
  reset(): void {
    this.reached.clear();
  }

  async stop(): Promise<void> {
    this.abort.abort();
    await this.run;
  }
}

/** Polls an HTTP endpoint until it answers 200. */
export async function waitHttpOk(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).status === 200) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer 200 within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The number of WebApps at which issue #17's RSS goal (120 MiB) is read. */
export const GOAL_RSS_SIZE = 1000;

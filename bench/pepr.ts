/**
 * Pepr as a benchmark peer: the WebApp operator as a Pepr module (bench/peers/pepr), installed with
 * `npm ci` and run with `pepr dev` against a local control plane.
 *
 * `pepr dev --host localhost` builds the module (tsc + esbuild, then keeps esbuild watching), writes
 * a self-signed webhook certificate for `localhost`, registers a mutating and a validating webhook
 * configuration named `pepr-kubeplug-bench` pointing at https://localhost:3000, and forks the built
 * module, which serves the webhooks and runs the watches (in dev mode one process does both).
 *
 * Port 3000 is fixed: Pepr writes it into the webhook URL (src/lib/assets/webhooks.ts) and the
 * module's server defaults to it; neither is configurable from `pepr dev`. So only one Pepr peer
 * can run on a machine at a time; startPepr refuses to start when the port is taken.
 */
import { spawn } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { existsSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { dirname, join } from "node:path";
import type { ControlPlane } from "../test/controlplane/index.ts";
import { Managed } from "./lib/harness.ts";

/** The Pepr module's folder. */
export const PEPR_DIR = join(import.meta.dirname, "peers/pepr");
/** The module's uuid (package.json `pepr.uuid`); Pepr names its webhook configurations `pepr-<uuid>`. */
export const PEPR_UUID = "kubeplug-bench";
/** Port of Pepr's webhook server in dev mode; fixed by Pepr. */
export const PEPR_WEBHOOK_PORT = 3000;
/** The namespace startPepr probes readiness in (kept out of the benchmark's `default`). */
export const PEPR_PROBE_NAMESPACE = "kubeplug-pepr-probe";

const STAMP = join(PEPR_DIR, "node_modules", ".kubeplug-install-stamp");
const CLI = join(PEPR_DIR, "node_modules/pepr/dist/cli.js");
/** The built module `pepr dev` forks (loadModule: `dist/pepr-<uuid>.js`). */
const MODULE_SCRIPT = `pepr-${PEPR_UUID}.js`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** PATH with the running Node (24) first, so npm, tsc and Pepr's forks run on it too. */
function envPath(): string {
  return `${dirname(process.execPath)}:${process.env.PATH ?? ""}`;
}

function installStamp(): string {
  const hash = createHash("sha256");
  hash.update(readFileSync(join(PEPR_DIR, "package.json")));
  hash.update(readFileSync(join(PEPR_DIR, "package-lock.json")));
  hash.update(process.version);
  return hash.digest("hex");
}

/**
 * Installs the Pepr module's dependencies (`npm ci` in bench/peers/pepr) unless they are installed
 * from the current package.json and package-lock.json already (a stamp in node_modules records
 * that). About 20 s with a warm npm cache, about 210 MB on disk.
 */
export async function ensurePepr(log: (m: string) => void): Promise<void> {
  const stamp = installStamp();
  if (existsSync(CLI) && existsSync(STAMP) && readFileSync(STAMP, "utf8") === stamp) return;
  log("pepr: npm ci in bench/peers/pepr (first run or the lock changed; ~20-40 s, ~210 MB)");
  const started = performance.now();
  const child = spawn("npm", ["ci", "--no-audit", "--no-fund"], {
    cwd: PEPR_DIR,
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, PATH: envPath() },
  });
  let output = "";
  const keep = (d: Buffer) => {
    output = (output + d.toString()).slice(-20_000);
  };
  child.stdout?.on("data", keep);
  child.stderr?.on("data", keep);
  const progress = setInterval(
    () => log(`pepr: npm ci still running (${((performance.now() - started) / 1000).toFixed(0)} s)`),
    10_000,
  );
  const code = await new Promise<number | null>((resolve, reject) => {
    child.on("error", reject);
    child.on("exit", (c) => resolve(c));
  }).finally(() => clearInterval(progress));
  if (code !== 0) throw new Error(`npm ci in ${PEPR_DIR} failed (exit ${code}):\n${output}`);
  writeFileSync(STAMP, stamp);
  const last = output.trim().split("\n").at(-1) ?? "";
  log(`pepr: ${last} (${((performance.now() - started) / 1000).toFixed(1)} s)`);
}

/** A running `pepr dev`. */
export interface PeprProcess {
  /** The `pepr dev` CLI process (leader of the process group holding the whole tree). */
  proc: Managed;
  /** Milliseconds from spawn to ready (webhooks answering and the watcher reconciling). */
  readyMs: number;
  webhookPort: number;
  /**
   * The process doing the work: the forked module (webhook server, watches and their caches, the
   * reconciles). Measure RSS over these.
   */
  pids(): number[];
  /** The whole tree: the `pepr dev` CLI (esbuild watch context), the esbuild service, the module. */
  allPids(): number[];
  /** Removes the webhook configurations (and Pepr's stores), then ends the whole process tree. */
  stop(): Promise<void>;
}

type ApiTarget = Pick<ControlPlane, "kubeconfigPath" | "server" | "token" | "caPem">;

interface ApiResponse {
  status: number;
  body: unknown;
  headers: Record<string, string | string[] | undefined>;
}

/** One request to the API server (kept local: needs response headers, and core/ is moving). */
function api(cp: ApiTarget, method: string, path: string, body?: unknown): Promise<ApiResponse> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(
      `${cp.server}${path}`,
      {
        method,
        ca: cp.caPem,
        timeout: 15_000,
        headers: {
          Authorization: `Bearer ${cp.token}`,
          Accept: "application/json",
          ...(payload ? { "Content-Type": "application/json" } : {}),
        },
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on("data", (c: Buffer) => chunks.push(c));
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString();
          let parsed: unknown = text;
          try {
            parsed = JSON.parse(text);
          } catch {
            // not JSON
          }
          resolve({ status: res.statusCode ?? 0, body: parsed, headers: res.headers });
        });
      },
    );
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error(`${method} ${path} timed out`)));
    req.end(payload);
  });
}

async function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, () => server.close(() => resolve(true)));
  });
}

/** Parent pid and process group of every process (Linux /proc). */
function processTable(): Map<number, { state: string; ppid: number; pgid: number; cmdline: string }> {
  const table = new Map<number, { state: string; ppid: number; pgid: number; cmdline: string }>();
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, "utf8");
      // pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, "utf8").replaceAll("\0", " ").trim();
      table.set(Number(entry), { state: fields[0] as string, ppid: Number(fields[1]), pgid: Number(fields[2]), cmdline });
    } catch {
      // exited meanwhile
    }
  }
  return table;
}

/** `root` and all its descendants. */
export function processTree(root: number): { pid: number; cmdline: string }[] {
  const table = processTable();
  const out: { pid: number; cmdline: string }[] = [];
  const walk = (pid: number) => {
    const entry = table.get(pid);
    if (!entry) return;
    out.push({ pid, cmdline: entry.cmdline });
    for (const [child, e] of table) if (e.ppid === pid) walk(child);
  };
  walk(root);
  return out;
}

/** Live (not zombie) members of a process group. */
function groupMembers(pgid: number): number[] {
  return [...processTable()].filter(([, e]) => e.pgid === pgid && e.state !== "Z").map(([pid]) => pid);
}

function webAppBody(namespace: string, name: string, spec: Record<string, unknown>) {
  return { apiVersion: "webapp.example.com/v1", kind: "WebApp", metadata: { name, namespace }, spec };
}

/**
 * Starts `pepr dev` for the module in bench/peers/pepr against `cp` and resolves once it really
 * works: the API server calls both webhooks (a dry-run create comes back with Pepr's mutation
 * annotation and the validator's warning) and the watcher reconciles (a probe WebApp gets its
 * Deployment, Service and status; the probe is then deleted with its children). Call ensurePepr
 * first. The WebApp CRD must be installed.
 */
export async function startPepr(
  cp: ApiTarget,
  log: (m: string) => void,
  options: { logLevel?: string; readyTimeoutMs?: number } = {},
): Promise<PeprProcess> {
  if (!existsSync(CLI)) throw new Error(`Pepr is not installed in ${PEPR_DIR}: call ensurePepr() first`);
  if (!(await portFree(PEPR_WEBHOOK_PORT))) {
    throw new Error(`port ${PEPR_WEBHOOK_PORT} is in use (another pepr dev?); Pepr's dev webhook port cannot be changed`);
  }
  const deadline = Date.now() + (options.readyTimeoutMs ?? 180_000);
  const started = performance.now();
  // `pepr dev` works in the module's folder (it builds ./pepr.ts into ./dist); Managed has no cwd
  // option, so a shell changes directory and execs node: the Managed pid is the CLI itself.
  const proc = new Managed(
    "pepr",
    "/bin/sh",
    ["-c", 'cd "$KUBEPLUG_PEPR_DIR" && exec "$KUBEPLUG_NODE" "$KUBEPLUG_PEPR_CLI" dev --host localhost --yes'],
    {
      KUBEPLUG_PEPR_DIR: PEPR_DIR,
      KUBEPLUG_NODE: process.execPath,
      KUBEPLUG_PEPR_CLI: CLI,
      PATH: envPath(),
      // The control plane's kubeconfig carries its CA and a server URL (127.0.0.1) its serving
      // certificate names; Pepr's client (kubernetes-fluent-client) verifies TLS against that CA.
      KUBECONFIG: cp.kubeconfigPath,
      // pepr dev defaults the module to debug logging, which logs every watch event with its object.
      LOG_LEVEL: options.logLevel ?? "warn",
      // Silences "Pepr should be run via `npx pepr`" (the CLI checks how npm started it).
      npm_lifecycle_event: "npx",
    },
  );
  const fail = async (what: string): Promise<never> => {
    const output = proc.output;
    await proc.stop();
    throw new Error(`pepr dev: ${what}\n--- pepr output (tail) ---\n${output.slice(-6_000)}`);
  };
  const exited = () => proc.child.exitCode !== null || proc.child.signalCode !== null;
  const waitUntil = async (what: string, check: () => Promise<boolean>) => {
    for (;;) {
      if (await check().catch(() => false)) return;
      if (exited()) await fail(`exited (${proc.child.exitCode ?? proc.child.signalCode}) while waiting for ${what}`);
      if (Date.now() > deadline) await fail(`timed out waiting for ${what}`);
      await sleep(100);
    }
  };

  const hooks = [
    `/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/pepr-${PEPR_UUID}`,
    `/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/pepr-${PEPR_UUID}`,
  ];
  await waitUntil("the webhook configurations", async () => {
    for (const path of hooks) if ((await api(cp, "GET", path)).status !== 200) return false;
    return true;
  });
  log(`pepr: webhook configurations registered after ${((performance.now() - started) / 1000).toFixed(1)} s`);

  const ns = PEPR_PROBE_NAMESPACE;
  const nsStatus = (await api(cp, "POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name: ns } }))
    .status;
  if (nsStatus !== 201 && nsStatus !== 409) await fail(`could not create namespace ${ns} (HTTP ${nsStatus})`);
  const webapps = `/apis/webapp.example.com/v1/namespaces/${ns}/webapps`;

  // Admission: "nginx" (no tag) passes the CRD schema, gets Pepr's annotation from the mutating
  // webhook and a warning from the validating one. Until the module serves, the API server answers
  // "failed calling webhook" (failurePolicy Fail).
  await waitUntil("the API server to call both webhooks", async () => {
    const res = await api(cp, "POST", `${webapps}?dryRun=All`, webAppBody(ns, "pepr-admission-probe", { image: "nginx" }));
    const annotations = (res.body as { metadata?: { annotations?: Record<string, string> } }).metadata?.annotations ?? {};
    const warning = String(res.headers.warning ?? "");
    return res.status === 201 && annotations[`${PEPR_UUID}.pepr.dev/webapp`] === "succeeded" && warning.includes("has no tag");
  });
  log(`pepr: webhooks answering after ${((performance.now() - started) / 1000).toFixed(1)} s`);

  // Watcher: a probe WebApp converges (Deployment, Service, status for its generation).
  const probe = `pepr-probe-${randomBytes(3).toString("hex")}`;
  const created = await api(cp, "POST", webapps, webAppBody(ns, probe, { image: "nginx:1.27" }));
  if (created.status !== 201)
    await fail(`could not create probe WebApp (HTTP ${created.status}): ${JSON.stringify(created.body)}`);
  const children = [`/apis/apps/v1/namespaces/${ns}/deployments/${probe}`, `/api/v1/namespaces/${ns}/services/${probe}`];
  await waitUntil("the watcher to reconcile a probe WebApp", async () => {
    for (const path of children) if ((await api(cp, "GET", path)).status !== 200) return false;
    const app = (await api(cp, "GET", `${webapps}/${probe}`)).body as {
      metadata?: { generation?: number };
      status?: { observedGeneration?: number };
    };
    return app.status?.observedGeneration !== undefined && app.status.observedGeneration === app.metadata?.generation;
  });
  // Delete the probe, then its children ourselves (no garbage collector without a controller
  // manager); with the owner gone, Pepr's self-heal finds nothing to re-apply.
  await api(cp, "DELETE", `${webapps}/${probe}`);
  await waitUntil("the probe WebApp to go", async () => (await api(cp, "GET", `${webapps}/${probe}`)).status === 404);
  for (const path of children) await api(cp, "DELETE", path);
  await waitUntil("the probe's children to go", async () => {
    for (const path of children) if ((await api(cp, "GET", path)).status !== 404) return false;
    return true;
  });
  const readyMs = performance.now() - started;
  log(`pepr: ready after ${(readyMs / 1000).toFixed(1)} s`);

  const allPids = () => processTree(proc.pid).map((p) => p.pid);
  const pids = () =>
    processTree(proc.pid)
      .filter((p) => p.cmdline.includes(MODULE_SCRIPT))
      .map((p) => p.pid);
  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      // Webhooks first: with failurePolicy Fail, a configuration left pointing at a dead server
      // would make every WebApp write on this control plane fail.
      for (const path of hooks) await api(cp, "DELETE", path).catch(() => undefined);
      const pgid = proc.pid;
      const t0 = performance.now();
      await proc.stop();
      // The CLI is gone; the module may not be: on SIGTERM it closes its HTTPS server and exits
      // only when the API server's keep-alive connections to it end (up to 90 s). Its webhooks are
      // already gone, so nothing needs a graceful end: SIGKILL what is left after a second.
      const until = Date.now() + 1_000;
      let killed = false;
      while (groupMembers(pgid).length > 0) {
        if (Date.now() > until && !killed) {
          killed = true;
          try {
            process.kill(-pgid, "SIGKILL");
          } catch {
            // gone
          }
        }
        await sleep(20);
      }
      // Pepr's stores (it creates them at start): removed once nothing can write them again.
      for (const store of [`pepr-${PEPR_UUID}-store`, `pepr-${PEPR_UUID}-schedule`]) {
        await api(cp, "DELETE", `/apis/pepr.dev/v1/namespaces/pepr-system/peprstores/${store}`).catch(() => undefined);
      }
      log(`pepr: stopped in ${(performance.now() - t0).toFixed(0)} ms${killed ? " (module SIGKILLed after 1 s)" : ""}`);
    })();
    return stopping;
  };
  return { proc, readyMs, webhookPort: PEPR_WEBHOOK_PORT, pids, allPids, stop };
}

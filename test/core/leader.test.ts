/**
 * Leader election across real manager processes (test/fixtures/run-widget-manager.ts) against a real
 * control plane: one leader among replicas, only the leader reconciles, a clean stop releases the
 * lease (fast takeover), a killed leader is replaced only after its lease expires, standbys serve
 * health and metrics, and bad flags exit 2 with a message naming the flag.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { isAlreadyExists, RestClient } from "../../core/runtime.ts";
import { type ControlPlane, freePort, startControlPlane } from "../controlplane/index.ts";
import { widgetCrd } from "../fixtures/widget-plugin.ts";
import { createNamespace, fetchText, installCrd, metricValue } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";

const FIXTURE = join(import.meta.dirname, "../fixtures/run-widget-manager.ts");
const NAMESPACE = "leader-test";
const LEASE = "kubeplug-leader";
const LEASE_PATH = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases/${LEASE}`;
const WIDGETS_PATH = `/apis/test.kubeplug.dev/v1/namespaces/${NAMESPACE}/widgets`;
const LEASE_DURATION_MS = 4_000;
const RETRY_PERIOD_MS = 500;
const TIMINGS = [
  "--leader-elect-lease-duration",
  `${LEASE_DURATION_MS / 1000}s`,
  "--leader-elect-renew-deadline",
  "3s",
  "--leader-elect-retry-period",
  `${RETRY_PERIOD_MS}ms`,
];
const LEADER = { name: LEASE };
const RECONCILES = { controller: "widget" };

interface LeaseSpec {
  holderIdentity?: string;
  leaseDurationSeconds?: number;
  acquireTime?: string;
  renewTime?: string;
  leaseTransitions?: number;
}

interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

/** Every child this file started; `after` (and, as a last resort, process exit) kills the survivors. */
const children = new Set<ChildProcess>();
process.on("exit", () => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
});

/** A fixture process with its captured stderr and exit. */
class FixtureProcess {
  readonly child: ChildProcess;
  readonly exited: Promise<Exit>;
  exit: Exit | undefined;
  stderr = "";

  readonly name: string;

  constructor(name: string, args: string[]) {
    this.name = name;
    // The children read KUBEPLUG_* and POD_NAMESPACE; keep the caller's settings out of them.
    const env = Object.fromEntries(
      Object.entries(process.env).filter(([k]) => !k.startsWith("KUBEPLUG_") && k !== "POD_NAMESPACE" && k !== "KUBECONFIG"),
    );
    this.child = spawn(process.execPath, [FIXTURE, ...args], { env, stdio: ["ignore", "ignore", "pipe"] });
    children.add(this.child);
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        this.exit = { code, signal };
        children.delete(this.child);
        resolve(this.exit);
      });
    });
  }

  /** The JSON log lines (pino) printed so far. */
  logs(): Record<string, unknown>[] {
    return this.stderr
      .split("\n")
      .filter((line) => line.startsWith("{"))
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
  }

  /** The last lines of stderr, for failure messages. */
  tail(lines = 25): string {
    return this.stderr.trimEnd().split("\n").slice(-lines).join("\n");
  }

  /** Ends the process: SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 10_000): Promise<Exit> {
    if (this.exit) return this.exit;
    this.child.kill("SIGTERM");
    const timer = setTimeout(() => this.child.kill("SIGKILL"), graceMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}

/** A manager replica with leader election on, its metrics and health ports on loopback. */
class Replica extends FixtureProcess {
  readonly metricsUrl: string;
  readonly healthUrl: string;

  constructor(name: string, kubeconfigPath: string, metricsPort: number, healthPort: number) {
    super(name, [
      "--kubeconfig",
      kubeconfigPath,
      "--metrics-bind-address",
      `127.0.0.1:${metricsPort}`,
      "--health-probe-bind-address",
      `127.0.0.1:${healthPort}`,
      "--leader-elect",
      "--leader-election-namespace",
      NAMESPACE,
      ...TIMINGS,
    ]);
    this.metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    this.healthUrl = `http://127.0.0.1:${healthPort}`;
  }

  static async start(name: string, kubeconfigPath: string): Promise<Replica> {
    return new Replica(name, kubeconfigPath, await freePort(), await freePort());
  }

  /** The lease identity it campaigns with (from its "waiting for the leader lease" log line). */
  identity(): string | undefined {
    const line = this.logs().find((l) => l.msg === "waiting for the leader lease");
    return typeof line?.identity === "string" ? line.identity : undefined;
  }

  async metrics(): Promise<string> {
    const { status, text } = await fetchText(this.metricsUrl);
    assert.equal(status, 200, `${this.name} /metrics`);
    return text;
  }

  /** 1 when leading, 0 when standing by, undefined before the elector exists. */
  async leaderStatus(): Promise<number | undefined> {
    const text = await this.metrics();
    if (!text.includes(`leader_election_master_status{name="${LEASE}"}`)) return undefined;
    return metricValue(text, "leader_election_master_status", LEADER);
  }

  async reconciles(): Promise<number> {
    return metricValue(await this.metrics(), "controller_runtime_reconcile_total", RECONCILES);
  }
}

const DEAD = Symbol("dead");

/** waitFor that gives up at once, with the process's log, when one of `alive` exits. */
async function waitWhileRunning<T>(
  alive: readonly FixtureProcess[],
  what: string,
  check: () => Promise<T | undefined | false> | T | undefined | false,
  options: { timeoutMs?: number; intervalMs?: number } = {},
): Promise<T> {
  let dead: FixtureProcess | undefined;
  const value = await waitFor<T | typeof DEAD>(
    what,
    () => {
      dead = alive.find((p) => p.exit);
      return dead ? DEAD : check();
    },
    options,
  );
  if (value === DEAD && dead) {
    throw new Error(`${dead.name} exited (${dead.exit?.code ?? dead.exit?.signal}) while waiting for ${what}:\n${dead.tail()}`);
  }
  return value as T;
}

const ms = (iso: string | undefined): number => {
  assert.ok(iso, "a lease time is set");
  return Date.parse(iso);
};

describe("leader election between manager processes", () => {
  let cp: ControlPlane;
  let rest: RestClient;
  const replicas: Replica[] = [];
  let leader: Replica;
  let standby: Replica;

  const readLease = async (): Promise<LeaseSpec> => (await rest.request<{ spec?: LeaseSpec }>("GET", LEASE_PATH)).spec ?? {};

  const createWidget = async (name: string): Promise<void> => {
    try {
      await rest.request("POST", WIDGETS_PATH, {
        body: { apiVersion: "test.kubeplug.dev/v1", kind: "Widget", metadata: { name }, spec: { size: 1 } },
      });
    } catch (err) {
      if (!isAlreadyExists(err)) throw err;
    }
  };

  const allReconciled = async (names: string[]): Promise<boolean> => {
    for (const name of names) {
      const w = await rest.request<{ metadata: { generation?: number }; status?: { observedGeneration?: number } }>(
        "GET",
        `${WIDGETS_PATH}/${name}`,
      );
      if (w.status?.observedGeneration !== w.metadata.generation) return false;
    }
    return true;
  };

  const startReplica = async (name: string): Promise<Replica> => {
    const replica = await Replica.start(name, cp.kubeconfigPath);
    replicas.push(replica);
    return replica;
  };

  before(async () => {
    cp = await startControlPlane();
    rest = await RestClient.create(cp.kubeConfig);
    await installCrd(cp.kubeConfig, widgetCrd);
    await createNamespace(cp.kubeConfig, NAMESPACE);
  });

  after(async () => {
    try {
      await Promise.all(replicas.map((r) => r.stop()));
    } finally {
      await rest?.close();
      await cp?.stop();
    }
  });

  it("elects exactly one of two replicas; the Lease names it; only it reconciles", async (t) => {
    const a = await startReplica("replica-a");
    const b = await startReplica("replica-b");
    const statuses = await waitWhileRunning([a, b], "exactly one leader among two replicas", async () => {
      const s = [await a.leaderStatus(), await b.leaderStatus()] as const;
      return s[0] !== undefined && s[1] !== undefined && s[0] + s[1] === 1 && s;
    });
    [leader, standby] = statuses[0] === 1 ? [a, b] : [b, a];
    t.diagnostic(`${leader.name} leads, ${standby.name} stands by`);

    const leaderId = leader.identity();
    const standbyId = standby.identity();
    assert.ok(leaderId && standbyId, "both replicas logged their identity");
    assert.notEqual(leaderId, standbyId);
    const lease = await readLease();
    assert.equal(lease.holderIdentity, leaderId);
    assert.equal(lease.leaseDurationSeconds, LEASE_DURATION_MS / 1000);
    assert.ok(
      leader.logs().some((l) => l.msg === "became leader"),
      "the leader logs that it leads",
    );
    assert.ok(!standby.logs().some((l) => l.msg === "became leader"), "the standby never led");

    const names = ["w1", "w2", "w3"];
    for (const name of names) await createWidget(name);
    await waitWhileRunning([leader, standby], "the Widgets to be reconciled", () => allReconciled(names));
    await waitWhileRunning([leader, standby], "the leader's reconcile count", async () => (await leader.reconciles()) >= 3);
    // The standby has the Widgets in its cache too (it serves /readyz once synced) and still never reconciled.
    await waitWhileRunning(
      [standby],
      "the standby's caches to sync",
      async () => (await fetchText(`${standby.healthUrl}/readyz`)).status === 200,
    );
    assert.equal(await standby.reconciles(), 0, "the standby reconciled nothing");
    assert.equal(await standby.leaderStatus(), 0);
    assert.equal(await leader.leaderStatus(), 1);
    assert.equal((await readLease()).holderIdentity, leaderId, "leadership did not move");
    t.diagnostic(`leader reconciles: ${await leader.reconciles()}, standby reconciles: 0`);
  });

  it("a standby serves /readyz, /healthz and /metrics while not leading", async () => {
    assert.ok(standby, "the election test ran");
    const ready = await fetchText(`${standby.healthUrl}/readyz`);
    assert.equal(ready.status, 200, ready.text);
    assert.equal(ready.text, "ok");
    const verbose = await fetchText(`${standby.healthUrl}/readyz?verbose`);
    assert.match(verbose.text, /\[\+\]informers ok/);
    const health = await fetchText(`${standby.healthUrl}/healthz`);
    assert.equal(health.status, 200);
    assert.equal(health.text, "ok");
    assert.equal(await standby.leaderStatus(), 0);
  });

  it("SIGTERM: the leader exits 0 and releases the lease; the standby takes over before it would have expired", async (t) => {
    assert.ok(leader && standby, "the election test ran");
    const old = leader;
    const oldId = old.identity();
    const newId = standby.identity();
    // Read just before the signal: the leader's last renewal is no earlier than this renewTime, so an
    // unreleased lease could not have expired before renewTime + leaseDurationSeconds.
    const held = await readLease();
    assert.equal(held.holderIdentity, oldId);
    const started = performance.now();
    old.child.kill("SIGTERM");

    await waitWhileRunning([standby], "the standby to lead", async () => (await standby.leaderStatus()) === 1, {
      timeoutMs: 30_000,
      intervalMs: 50,
    });
    const takeoverMs = performance.now() - started;
    t.diagnostic(`takeover after SIGTERM (lease released): ${takeoverMs.toFixed(0)} ms`);
    leader = standby;

    const taken = await readLease();
    assert.equal(taken.holderIdentity, newId, "the standby holds the lease");
    assert.notEqual(taken.holderIdentity, oldId);
    assert.equal(taken.leaseTransitions, (held.leaseTransitions ?? 0) + 1, "one transition");
    assert.equal(taken.leaseDurationSeconds, LEASE_DURATION_MS / 1000, "the new holder restores the duration");
    const wouldExpire = ms(held.renewTime) + (held.leaseDurationSeconds ?? 0) * 1000;
    t.diagnostic(`acquired ${(wouldExpire - ms(taken.acquireTime)).toFixed(0)} ms before the old lease would have expired`);
    assert.ok(
      ms(taken.acquireTime) < wouldExpire,
      `acquired at ${taken.acquireTime}, before the unreleased lease would have expired (${new Date(wouldExpire).toISOString()})`,
    );

    const exit = await waitFor("the old leader to exit", () => old.exit, { timeoutMs: 30_000 });
    assert.deepEqual(exit, { code: 0, signal: null }, old.tail());
    assert.ok(
      old.logs().some((l) => l.msg === "released the lease"),
      `the old leader logs the release:\n${old.tail()}`,
    );

    // The new leader's controllers run: it catches up on the existing Widgets and handles new ones.
    await createWidget("w4");
    await waitWhileRunning([leader], "the new leader to reconcile", () => allReconciled(["w1", "w2", "w3", "w4"]));
    await waitWhileRunning([leader], "the new leader's reconcile count", async () => (await leader.reconciles()) >= 4);
  });

  it("SIGKILL: a standby takes over only after the unrenewed lease expires", async (t) => {
    assert.ok(leader, "the SIGTERM test ran");
    const next = await startReplica("replica-c");
    await waitWhileRunning([leader, next], "the new replica to stand by", async () => {
      return (await next.leaderStatus()) === 0 && next.identity() !== undefined;
    });
    standby = next;
    const oldId = leader.identity();
    const newId = standby.identity();
    assert.ok(oldId && newId);
    // The killed leader's last renewal is no earlier than this renewTime.
    const held = await readLease();
    assert.equal(held.holderIdentity, oldId);
    const started = performance.now();
    leader.child.kill("SIGKILL");

    await waitWhileRunning([standby], "the standby to lead after expiry", async () => (await standby.leaderStatus()) === 1, {
      timeoutMs: 60_000,
      intervalMs: 50,
    });
    const takeoverMs = performance.now() - started;
    t.diagnostic(`takeover after SIGKILL (lease expired): ${takeoverMs.toFixed(0)} ms`);
    assert.deepEqual(await leader.exited, { code: null, signal: "SIGKILL" });

    const taken = await readLease();
    assert.equal(taken.holderIdentity, newId, "the lease holder changed");
    assert.equal(taken.leaseTransitions, (held.leaseTransitions ?? 0) + 1, "one transition");
    // The standby judges expiry from when it saw the record change, which is after the leader's last
    // renewal; its acquireTime is taken just before its final read, hence one retry period of slack.
    const expiry = ms(held.renewTime) + (held.leaseDurationSeconds ?? 0) * 1000;
    assert.ok(
      ms(taken.acquireTime) >= expiry - RETRY_PERIOD_MS,
      `acquired at ${taken.acquireTime}, not before the lease expired (${new Date(expiry).toISOString()})`,
    );
    t.diagnostic(`acquired ${(ms(taken.acquireTime) - expiry).toFixed(0)} ms after the last seen renewal expired`);
    leader = standby;
    await createWidget("w5");
    await waitWhileRunning([leader], "the new leader to reconcile", () => allReconciled(["w5"]));

    const exit = await leader.stop();
    assert.deepEqual(exit, { code: 0, signal: null }, leader.tail());
  });
});

describe("manager flags", () => {
  const cases: { args: string[]; flag: RegExp; allowed: RegExp }[] = [
    {
      args: ["--leader-elect-retry-period", "5x"],
      flag: /--leader-elect-retry-period/,
      allowed: /"5x" is not a duration like 15s, 500ms or 1m30s/,
    },
    {
      args: ["--max-concurrent-reconciles", "0"],
      flag: /--max-concurrent-reconciles: .*>=\s*1/,
      allowed: /1\.\.1000/,
    },
    {
      args: ["--no-such-flag"],
      flag: /'--no-such-flag'/,
      // The usage that follows lists every flag the manager accepts.
      allowed: /Flags:\n(.*\n)*\s+--leader-elect-retry-period <value>/,
    },
  ];
  for (const { args, flag, allowed } of cases) {
    it(`rejects ${args.join(" ")} with exit code 2 and a message naming the flag`, async (t) => {
      const proc = new FixtureProcess("bad-flags", ["--metrics-bind-address", "0", "--health-probe-bind-address", "0", ...args]);
      t.after(() => proc.stop(2_000));
      const exit = await waitFor(`the manager to exit on ${args.join(" ")}`, () => proc.exit, { timeoutMs: 30_000 });
      assert.deepEqual(exit, { code: 2, signal: null }, proc.stderr);
      assert.match(proc.stderr, /^kubeplug run: /);
      assert.match(proc.stderr, flag);
      assert.match(proc.stderr, allowed);
      assert.doesNotMatch(proc.stderr, /\n\s+at /, "no stack trace");
    });
  }
});

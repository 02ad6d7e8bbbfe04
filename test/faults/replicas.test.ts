/**
 * Faults with two replicas (the chart's default): the leader killed, partitioned from the API server
 * while alive, and stopped with SIGTERM, each under load. Who wrote what and when comes from the API
 * server's audit log: replicas share the chart's ServiceAccount and tell themselves apart by their
 * user agent, `kubeplug (<pod name>)`. The lease timings are the chart's defaults (15 s / 10 s / 2 s).
 * Scenarios 5 and 7 are heavy (`npm run faults` only): 6, the partition, covers the fence in `npm test`.
 */
import { readFileSync } from "node:fs";
import { describe } from "node:test";
import { fetchText, metricValue } from "../support/cluster.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import {
  createBurst,
  describeCensus,
  type FaultCluster,
  intact,
  leaseHolder,
  names,
  operatorPid,
  proxiedOperatorKubeconfig,
  type Replica,
  scenario,
  seconds,
  waitConverged,
  waitFor,
  withFaultCluster,
} from "./support.ts";

const LEASE_DURATION_MS = 15_000;
const WRITE_VERBS = new Set(["create", "update", "patch", "delete"]);

/** One write in the audit log. */
interface AuditWrite {
  replica: string;
  verb: string;
  resource: string;
  /** namespace/name */
  object: string;
  /** When the API server received it (ms since the epoch). */
  at: number;
  code: number;
}

/** The replicas' writes in the audit log (RequestReceived is omitted: one line per write). */
function auditWrites(path: string): AuditWrite[] {
  const writes: AuditWrite[] = [];
  for (const line of readFileSync(path, "utf8").split("\n")) {
    if (!line.includes('"userAgent":"kubeplug (')) continue;
    const e = JSON.parse(line) as {
      verb: string;
      userAgent: string;
      stage: string;
      requestReceivedTimestamp: string;
      objectRef?: { resource?: string; namespace?: string; name?: string; subresource?: string };
      responseStatus?: { code?: number };
    };
    if (!WRITE_VERBS.has(e.verb) || e.stage !== "ResponseComplete") continue;
    const ref = e.objectRef ?? {};
    writes.push({
      replica: /kubeplug \(([^)]+)\)/.exec(e.userAgent)?.[1] ?? "?",
      verb: e.verb,
      resource: `${ref.resource ?? "?"}${ref.subresource ? `/${ref.subresource}` : ""}`,
      object: `${ref.namespace ?? ""}/${ref.name ?? ""}`,
      at: Date.parse(e.requestReceivedTimestamp),
      code: e.responseStatus?.code ?? 0,
    });
  }
  return writes;
}

/** Writes other than the replicas' own lease renewals and Events. */
const objectWrites = (writes: AuditWrite[], replica: string) =>
  writes.filter((w) => w.replica === replica && w.resource !== "leases" && w.resource !== "events" && w.code < 400);

/**
 * Objects written by both replicas with the two replicas' writes to it interleaved in time (an
 * object written by one replica, then the other, then the first again): two writers at once.
 */
function interleaved(writes: AuditWrite[]): string[] {
  const byObject = new Map<string, AuditWrite[]>();
  for (const w of writes) {
    if (w.resource === "leases" || w.resource === "events" || w.code >= 400) continue;
    byObject.set(`${w.resource} ${w.object}`, [...(byObject.get(`${w.resource} ${w.object}`) ?? []), w]);
  }
  const bad: string[] = [];
  for (const [object, list] of byObject) {
    const order = list.sort((a, b) => a.at - b.at).map((w) => w.replica);
    const switches = order.filter((r, i) => i > 0 && r !== order[i - 1]).length;
    if (switches > 1) bad.push(`${object}: ${order.join(" ")}`);
  }
  return bad;
}

/** Polls until `replica` leads (its own metric); resolves with the time (ms since the epoch). */
async function leadingAt(replica: Replica, timeoutMs = 120_000): Promise<number> {
  await waitFor(
    `${replica.name} to lead`,
    async () => metricValue((await fetchText(replica.metricsUrl)).text, "leader_election_master_status") === 1,
    { timeoutMs, intervalMs: 100 },
  );
  return Date.now();
}

/**
 * Two replicas: `kubeplug-a` leading, `kubeplug-b` standing by; `admission` says which of them serves
 * the API server's webhook calls.
 */
async function twoReplicas(
  cluster: FaultCluster,
  admission: "leader" | "standby",
  leaderKubeconfig?: string,
): Promise<[Replica, Replica]> {
  const a = await cluster.startReplica("kubeplug-a", {
    admission: admission === "leader",
    ...(leaderKubeconfig ? { kubeconfig: leaderKubeconfig } : {}),
  });
  await leadingAt(a);
  const b = await cluster.startReplica("kubeplug-b", { admission: admission === "standby" });
  return [a, b];
}

describe("faults with two replicas", () => {
  scenario(
    "5",
    "two replicas, the leader killed -9 under load",
    async (report) => {
      await withFaultCluster({ audit: true }, async (cluster) => {
        // The standby serves admission here, so creates keep flowing while the leader dies.
        const [a, b] = await twoReplicas(cluster, "standby");
        const all = names("load", 150);
        const burst = createBurst(cluster.rest, all);
        await waitFor("the burst under way", async () => (await leaseHolder(cluster.rest)) === "kubeplug-a" && true);
        await new Promise((r) => setTimeout(r, 1_500));
        const killedAt = Date.now();
        process.kill(operatorPid(a), "SIGKILL");
        const tookOverAt = await leadingAt(b);
        await burst;
        const { census, at } = await waitConverged(cluster.rest, all.length, 180_000);
        const takeoverMs = tookOverAt - killedAt;
        report.figure("takeover after the kill", takeoverMs, "ms");
        report.timing(
          `takeover within the lease duration (${seconds(LEASE_DURATION_MS)})`,
          takeoverMs <= LEASE_DURATION_MS,
          seconds(takeoverMs),
        );
        report.figure(
          "converged after the takeover",
          at === undefined ? "never" : Date.now() - tookOverAt - (performance.now() - at),
          "ms",
        );
        report.check(
          "all converged; 0 missing, duplicated or orphaned",
          at !== undefined && intact(census),
          describeCensus(census),
        );
        await new Promise((r) => setTimeout(r, 1_500)); // let the audit log catch up
        const writes = auditWrites(cluster.auditLog as string);
        const [wa, wb] = [objectWrites(writes, "kubeplug-a"), objectWrites(writes, "kubeplug-b")];
        const lastA = Math.max(...wa.map((w) => w.at));
        const firstB = Math.min(...wb.map((w) => w.at));
        report.figure("writes by the killed leader / by the new one", `${wa.length} / ${wb.length}`);
        report.check(
          "no object written by both replicas in the same interval (the old leader's last write precedes the new one's first)",
          wa.length > 0 && wb.length > 0 && lastA < firstB && interleaved(writes).length === 0,
          `last write of a ${new Date(lastA).toISOString()}, first of b ${new Date(firstB).toISOString()}; interleaved: ${interleaved(writes).slice(0, 3).join("; ") || "none"}`,
        );
      });
    },
    { heavy: true },
  );

  scenario("6", "the leader partitioned from the API server while alive, under load", async (report) => {
    await withFaultCluster({ audit: true }, async (cluster) => {
      const proxy = await startTcpProxy("127.0.0.1", Number(new URL(cluster.cp.server).port));
      try {
        // The leader (through the proxy) also serves admission: a partition cuts it from the API
        // server only, as a broken route on its node would.
        const [a, b] = await twoReplicas(cluster, "leader", proxiedOperatorKubeconfig(cluster, proxy.port));
        const before = names("before", 40);
        await createBurst(cluster.rest, before);
        await waitConverged(cluster.rest, before.length);
        const during = names("during", 100);
        const burst = createBurst(cluster.rest, during);
        await new Promise((r) => setTimeout(r, 500));
        proxy.setMode("refuse");
        proxy.cut();
        const partitionedAt = Date.now();
        // The leader's own view, from its metrics (served locally, not through the partition).
        const stoppedAt = await (async () => {
          await waitFor(
            "the partitioned leader to stop leading",
            async () => metricValue((await fetchText(a.metricsUrl)).text, "leader_election_master_status") === 0,
            { timeoutMs: 60_000, intervalMs: 50 },
          );
          return Date.now();
        })();
        const acquiredAt = await leadingAt(b);
        await burst;
        const { census, at } = await waitConverged(cluster.rest, before.length + during.length, 180_000);
        proxy.setMode("pass");
        const healedAt = Date.now();
        await new Promise((r) => setTimeout(r, 10_000)); // the old leader back on the network for a while
        const metrics = (await fetchText(a.metricsUrl)).text;
        const fenced = metricValue(metrics, "kubeplug_leader_fenced_writes_total");
        report.figure("the old leader stopped leading after the partition", stoppedAt - partitionedAt, "ms");
        report.figure("the other replica acquired after the partition", acquiredAt - partitionedAt, "ms");
        report.figure("writes the old leader's fence refused", fenced);
        report.check(
          "the old leader stops before the other replica acquires",
          stoppedAt < acquiredAt,
          `stopped ${seconds(stoppedAt - partitionedAt)}, acquired ${seconds(acquiredAt - partitionedAt)} after the partition`,
        );
        report.check(
          "all converged; 0 missing, duplicated or orphaned",
          at !== undefined && intact(census),
          describeCensus(census),
        );
        await new Promise((r) => setTimeout(r, 1_500));
        const writes = auditWrites(cluster.auditLog as string);
        const lateA = objectWrites(writes, "kubeplug-a").filter((w) => w.at >= acquiredAt - 1_000);
        report.check(
          "no write by the old leader once the other replica leads (also after the partition heals)",
          lateA.length === 0 && interleaved(writes).length === 0,
          `${lateA.length} late writes${lateA[0] ? `, e.g. ${lateA[0].verb} ${lateA[0].resource} ${lateA[0].object}` : ""}; healed ${seconds(Date.now() - healedAt)} ago`,
        );
        report.check("the old leader is still running", a.host.child.exitCode === null, `exit ${a.host.child.exitCode}`);
      } finally {
        proxy.setMode("pass");
        await proxy.close();
      }
    });
  });

  scenario(
    "7",
    "SIGTERM of the leader with reconciles in flight",
    async (report) => {
      await withFaultCluster({ audit: true }, async (cluster) => {
        const [a, b] = await twoReplicas(cluster, "standby");
        const all = names("load", 150);
        const burst = createBurst(cluster.rest, all);
        await new Promise((r) => setTimeout(r, 2_000));
        const termAt = Date.now();
        const exited = a.host.stop("SIGTERM");
        const tookOverAt = await leadingAt(b);
        const exit = await exited;
        const exitedAt = Date.now();
        await burst;
        const { census, at } = await waitConverged(cluster.rest, all.length, 180_000);
        report.figure("handover (SIGTERM to the other replica leading)", tookOverAt - termAt, "ms");
        report.figure("the old leader exited after", exitedAt - termAt, "ms");
        report.check("the old leader exits 0", exit.code === 0, `code ${exit.code}, signal ${exit.signal}`);
        report.check(
          "its in-flight reconciles finished (no graceful-shutdown timeout) and it released the lease",
          !a.host.output().includes("did not finish in time") && a.host.output().includes("released the lease"),
          a.host.tail(3),
        );
        report.timing(
          "handover well within the lease duration (the lease was released)",
          tookOverAt - termAt < LEASE_DURATION_MS,
          seconds(tookOverAt - termAt),
        );
        report.check(
          "all converged; 0 missing, duplicated or orphaned",
          at !== undefined && intact(census),
          describeCensus(census),
        );
        await new Promise((r) => setTimeout(r, 1_500));
        const writes = auditWrites(cluster.auditLog as string);
        report.check(
          "no object written by both replicas at once",
          interleaved(writes).length === 0,
          interleaved(writes).slice(0, 3).join("; ") || "none",
        );
      });
    },
    { heavy: true },
  );
});

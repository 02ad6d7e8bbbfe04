import { describe } from "node:test";
import { fetchText, metricValue } from "../support/cluster.ts";
import { startTcpProxy } from "../support/tcp-proxy.ts";
import {
  census,
  createBurst,
  describeCensus,
  intact,
  proxiedOperatorKubeconfig,
  scenario,
  seconds,
  waitConverged,
  waitFor,
  withFaultCluster,
} from "./support.ts";

/** The stall bound of issue #16: a silent watch is replaced within 90 s. */
const STALL_BOUND_MS = 90_000;

describe("network faults", () => {
  scenario("4", "watch stall (every open connection silenced), default settings", async (report) => {
    await withFaultCluster({}, async (cluster) => {
      const proxy = await startTcpProxy("127.0.0.1", Number(new URL(cluster.cp.server).port));
      try {
        const replica = await cluster.startReplica("kubeplug-0", {
          kubeconfig: proxiedOperatorKubeconfig(cluster, proxy.port),
        });
        await createBurst(cluster.rest, ["before-0", "before-1"]);
        await waitConverged(cluster.rest, 2);
        // Let the informers' watches settle into their long-lived connections.
        await new Promise((r) => setTimeout(r, 2_000));

        proxy.freezeCurrent();
        const frozenAt = performance.now();
        await createBurst(cluster.rest, ["after-freeze"]);
        const { census: after, at } = await waitConverged(cluster.rest, 3, STALL_BOUND_MS + 60_000);
        const metrics = (await fetchText(replica.metricsUrl)).text;
        const stalls = metricValue(metrics, "kubeplug_informer_watch_stalls_total");
        const relists = metricValue(metrics, "kubeplug_informer_relists_total");
        const leaseLosses = metricValue(metrics, "kubeplug_leader_election_lost_total");
        const reconciledMs = at === undefined ? undefined : at - frozenAt;
        report.figure("a WebApp created after the freeze reconciled after", reconciledMs ?? "never", "ms");
        report.figure("watch stalls detected and replaced", stalls);
        report.figure("relists", relists);
        report.figure("lease losses (a renewal sent on a silenced connection)", leaseLosses);
        report.check("the WebApp created after the freeze is reconciled", at !== undefined, describeCensus(after));
        report.check("stalls are detected (kubeplug_informer_watch_stalls_total)", stalls >= 1, `${stalls} stalls`);
        report.check("no relist: the new watches resume from their resourceVersion", relists === 0, `${relists} relists`);
        report.timing(
          `stall detected and the change delivered within ${seconds(STALL_BOUND_MS)}`,
          reconciledMs !== undefined && reconciledMs <= STALL_BOUND_MS,
          reconciledMs === undefined ? "never" : seconds(reconciledMs),
        );
        report.check("the operator did not exit", replica.host.child.exitCode === null, `exit ${replica.host.child.exitCode}`);
        const final = await waitFor("a census", () => census(cluster.rest));
        report.check("0 missing, duplicated or orphaned children", intact(final), describeCensus(final));
      } finally {
        await proxy.close();
      }
    });
  });
});

/**
 * Faults of the operator's own process: kill -9 in a burst of creates. The chart's operator runs on
 * the host as its ServiceAccount, serving the chart's webhooks (failurePolicy Fail), with a real
 * control plane per scenario.
 */
import { describe } from "node:test";
import {
  names as burstNames,
  createBurst,
  describeCensus,
  intact,
  leaseHolder,
  operatorPid,
  replicaReady,
  scenario,
  seconds,
  census as takeCensus,
  waitConverged,
  waitFor,
  withFaultCluster,
} from "./support.ts";

describe("faults of the operator process", () => {
  scenario("1", "kill -9 of the manager in a burst of 200 creates, restarted at once", async (report) => {
    await withFaultCluster({}, async (cluster) => {
      const first = await cluster.startReplica("kubeplug-0");
      const names = burstNames("burst", 200);
      const burst = createBurst(cluster.rest, names);
      // Kill while the burst is under way: once about a third of the WebApps exist.
      const before = await waitFor(
        "60 WebApps created",
        async () => {
          const c = await takeCensus(cluster.rest);
          return c.webApps >= 60 && c;
        },
        { timeoutMs: 120_000, intervalMs: 50 },
      );
      const killAt = performance.now();
      process.kill(operatorPid(first), "SIGKILL");
      await first.host.exited;
      const restarted = await cluster.startReplica("kubeplug-0", { waitReady: false });
      const restartAt = performance.now();
      await replicaReady(restarted);
      const readyAt = performance.now();
      const outcome = await burst;
      // The fault ends when the restarted process is ready and the client has sent its last create.
      const endedAt = performance.now();
      const { census, at } = await waitConverged(cluster.rest, names.length, 180_000);
      report.figure("restart to ready", readyAt - restartAt, "ms");
      report.figure(
        "converged after the fault ended (ready, burst sent)",
        at === undefined ? "never" : Math.max(0, at - endedAt),
        "ms",
      );
      report.timing(
        "converged within 5 s of the fault's end",
        at !== undefined && at - endedAt <= 5_000,
        at === undefined ? "never" : seconds(Math.max(0, at - endedAt)),
      );
      report.figure("creates refused while the webhook server was down (retried by the client)", outcome.retried);
      report.figure("converged after the restart", at === undefined ? "never" : at - restartAt, "ms");
      report.figure("killed with", `${before.webApps} WebApps created, ${before.converged} converged`);
      report.check("all 200 converged", at !== undefined, describeCensus(census));
      report.check("0 missing, duplicated or orphaned children", intact(census), describeCensus(census));
      const holder = await leaseHolder(cluster.rest);
      report.check("the restarted process (same pod name) holds the lease", holder === "kubeplug-0", `holder ${holder}`);
      report.figure("kill to restart", restartAt - killAt, "ms");
      await restarted.host.stop("SIGTERM");
    });
  });
});

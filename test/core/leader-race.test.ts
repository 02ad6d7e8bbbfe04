/**
 * Electors racing for a Lease that does not exist yet, against a real API server: one of them leads
 * and no other takes the lease while it renews. This is the start of every multi-replica rollout
 * (all replicas campaign at once), where a standby's Lease watch has listed before the winner created
 * the Lease and has not delivered it yet when the standby reads the Lease itself.
 */
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { Client, LeaderElector, Metrics, RestClient, SharedCache, silentLogger } from "../../core/runtime.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { createNamespace } from "../support/cluster.ts";
import { waitFor } from "../support/wait.ts";

const NS = "leader-race";
const ELECTORS = 4;
const ROUNDS = 8;
/** Long enough that no lease expires within a round: any second leader is a stolen lease. */
const TIMINGS = { leaseDurationMs: 30_000, renewDeadlineMs: 20_000, retryPeriodMs: 500 };
/** How long each round watches for a second leader after the first one leads. */
const WATCH_MS = 3_000;

describe("electors racing for a new Lease", () => {
  let cp: ControlPlane;
  let rest: RestClient;
  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
    await createNamespace(cp.kubeConfig, NS);
  });
  after(async () => {
    await rest?.close();
    await cp?.stop();
  });

  it(`${ELECTORS} electors started at once, ${ROUNDS} fresh Leases: exactly one leads each`, async (t) => {
    const logger = silentLogger();
    const client = new Client(rest, new SharedCache(rest, { logger }));
    for (let round = 0; round < ROUNDS; round++) {
      const name = `race-${round}`;
      const stop = new AbortController();
      const leaders: string[] = [];
      const runs = Array.from({ length: ELECTORS }, (_, i) => {
        const elector = new LeaderElector({
          ...TIMINGS,
          name,
          namespace: NS,
          identity: `elector-${i}`,
          client,
          logger,
          metrics: new Metrics({ processMetrics: false }),
        });
        return elector.run(stop.signal, async (leadSignal) => {
          leaders.push(elector.identity);
          await new Promise((resolve) => leadSignal.addEventListener("abort", resolve, { once: true }));
        });
      });
      try {
        await waitFor(`a leader of Lease ${name}`, () => leaders.length > 0, { timeoutMs: 60_000 });
        await new Promise((r) => setTimeout(r, WATCH_MS));
        assert.equal(leaders.length, 1, `Lease ${name}: ${leaders.join(", ")} all led (a lease was taken while held)`);
      } finally {
        stop.abort();
        await Promise.all(runs);
      }
    }
    t.diagnostic(`${ROUNDS} rounds of ${ELECTORS} electors: one leader each`);
  });
});

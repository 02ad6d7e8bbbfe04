import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..");

test("the benchmark harness runs every workload end to end (smoke sizes)", async (t) => {
  const out = mkdtempSync(join(tmpdir(), "kubeplug-bench-"));
  try {
    // Pepr stays out of npm test: it installs ~210 MB from the registry and needs the fixed port
    // 3000. `npm run bench` includes it; test/pepr-peer.manual.ts checks the peer on its own.
    await run(process.execPath, [join(root, "bench/run.ts"), "--smoke", "--only", "convergence,admission,memory", "--out", out], {
      cwd: root,
      maxBuffer: 16 * 2 ** 20,
    });
    const json = readdirSync(out).find((f) => f.endsWith(".json")) as string;
    const results = JSON.parse(readFileSync(join(out, json), "utf8")) as { smoke: boolean; figures: Record<string, unknown> };
    assert.equal(results.smoke, true);
    const f = results.figures;
    const conv = f.convergenceMs as Record<string, number[]>;
    for (const system of [
      "kubeplug",
      "kubeplugWebhooks",
      "rawFloor",
      "minimalFloor",
      "minimalFloorWebhooks",
      "kubeplugFoo",
      "sampleControllerTuned",
      "sampleControllerShipped",
    ]) {
      assert.equal(conv[system]?.length, 1, `${system}: one round in a smoke run`);
      assert.ok((conv[system]?.[0] as number) > 0, `${system} converged`);
    }
    assert.ok((f.kubeplugStartToReadyMs as number) > 0, "start to ready is measured");
    // The API server's webhook durations over the bursts: kubeplug's (2 calls per create) and the echo floor's.
    for (const name of ["burstWebhookDuration", "echoBurstWebhookDuration"]) {
      const shares = f[name] as { calls: number; byType?: Record<string, { calls: number }> }[] | undefined;
      assert.equal(shares?.length, 1, `${name}: one round`);
      assert.ok(
        (shares?.[0]?.calls ?? 0) >= 20,
        `${name}: the 10 creates' webhook calls were counted (${JSON.stringify(shares)})`,
      );
      const byType = shares?.[0]?.byType ?? {};
      assert.ok(
        (byType.admit?.calls ?? 0) >= 10 && (byType.validating?.calls ?? 0) >= 10,
        `${name}: mutating and validating calls counted apart (${JSON.stringify(byType)})`,
      );
    }
    const load = f.webhookLoad as Record<"kubeplug" | "bare", { rps: number; cpuUsPerRequest: number }[]>;
    for (const server of ["kubeplug", "bare"] as const) {
      assert.equal(load[server].length, 2, `${server}: two alternating load runs`);
      for (const run of load[server]) assert.ok(run.rps > 0 && run.cpuUsPerRequest > 0, `${server}: ${JSON.stringify(run)}`);
    }
    assert.equal((f.kubeplugSelfHealMs as number[]).length, 3);
    const adm = f.admission as { withWebhooksMs: number[]; withoutWebhooksMs: number[] };
    assert.equal(adm.withWebhooksMs.length, 10);
    assert.equal(adm.withoutWebhooksMs.length, 10);
    const echo = f.echoDryRun as { withWebhooksMs: number[]; withoutWebhooksMs: number[] };
    assert.equal(echo.withWebhooksMs.length, 10, "the idle series through bare echo webhooks too");
    const trails = f.kubeplugEventsTrail as { events: number; lastAfterMs: number }[];
    assert.equal(trails.length, 2, "kubeplug's Events counted after each of its bursts (webhooks off and on)");
    for (const trail of trails) assert.ok(trail.events >= 10, `an Event per WebApp at least: ${JSON.stringify(trail)}`);
    assert.equal((f.kubeplugRssBytes as number[]).length, 2);
    assert.equal((f.sampleControllerRssBytes as number[]).length, 2);
    assert.equal((f.kubeplugRssJustAfterBytes as number[]).length, 2, "RSS 3 s after converging too");
    assert.equal((f.kubeplugDeployedRssBytes as number[]).length, 1, "RSS as deployed (webhooks on) at one size");
    assert.equal(f.kubeplugDeployedSize, 20, "at the first size when the goal's 1k is not among the sizes");
    const idle = f.idle as { operatorMetrics: Record<string, number>; auditLog: Record<string, number> };
    assert.ok(idle.operatorMetrics && idle.auditLog, "idle requests counted two ways");
    const md = readFileSync(join(out, "RESULTS.md"), "utf8");
    assert.match(md, /Pepr was not part of this run/);
    assert.match(md, /\| Convergence, 10 WebApps \(vs raw API floor\), median of 1 \|/);
    assert.match(md, /\| Webhook server CPU per request/);
    assert.match(md, /\| Webhook calls within 5 ms \/ 25 ms by the API server's histogram during the convergence bursts/);
    assert.match(md, /\| The same for a bare echo webhook/);
    assert.match(md, /\| Webhook calls within 5 ms \/ 25 ms during the bursts, validating calls only/);
    assert.match(md, /\| Memory per cached object/);
    assert.match(md, /\| The same through bare echo webhooks/);
    assert.match(md, /\| kubeplug's Events about each burst/);
    assert.match(md, /\| RSS with 20 WebApps, kubeplug as deployed \(webhooks on/);
    t.diagnostic(
      md
        .split("\n")
        .filter((l) => l.startsWith("|"))
        .join("\n"),
    );
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
});

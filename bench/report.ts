/** Renders benchmark results as the RESULTS.md table: each figure, its baseline, the ratio, the target. */
import { GOAL_RSS_SIZE, median, percentile } from "./lib/harness.ts";

/** What bench/run.ts writes to bench/results/<date>.json. */
export interface Results {
  date: string;
  smoke: boolean;
  sizes: object;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; kernel: string };
  versions: Record<string, string>;
  figures: Record<string, unknown>;
}

type Row = [figure: string, kubeplug: string, baseline: string, ratio: string, target: string, met: string];

const s = (ms: number | undefined) => (ms === undefined || Number.isNaN(ms) ? "n/a" : `${(ms / 1000).toFixed(2)} s`);
const ms = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? "n/a" : `${v.toFixed(1)} ms`);
const mib = (b: number | undefined) => (b === undefined ? "n/a" : `${(b / 2 ** 20).toFixed(0)} MiB`);
const ratio = (a: number | undefined, b: number | undefined) =>
  a === undefined || b === undefined || !b ? "n/a" : `${(a / b).toFixed(2)}x`;
const yes = (ok: boolean | undefined) => (ok === undefined ? "n/a" : ok ? "yes" : "**no**");

/** Load runs: one per round, each server measured back to back with its bare peer. */
type LoadRun = { rps: number; cpuUsPerRequest: number };

/**
 * The median of the rounds' ratios `a[i][key] / b[i][key]`, over the rounds both sides have and
 * whose ratio is a finite number; undefined when there is none (shown as "n/a").
 */
function pairedRatio(a: LoadRun[] | undefined, b: LoadRun[] | undefined, key: keyof LoadRun): number | undefined {
  if (!a || !b) return undefined;
  const ratios = a
    .slice(0, Math.min(a.length, b.length))
    .map((x, i) => x[key] / (b[i] as LoadRun)[key])
    .filter(Number.isFinite);
  return ratios.length ? median(ratios) : undefined;
}
const times = (v: number | undefined) => (v === undefined ? "n/a" : `${v.toFixed(2)}x`);

/** Which run each workload's figures come from (a partial run merges into the day's file). */
function ranAtLine(r: Results): string {
  const ranAt = (r.figures as { ranAt?: Record<string, string> }).ranAt;
  if (!ranAt) return "";
  const at = Object.entries(ranAt).map(([w, t]) => `${w} ${t.slice(11, 16)}`);
  return `Workloads run at (UTC): ${at.join(", ")}.\n`;
}

/** The headline figures of one run, from either results schema (before 2026-11-26 one number per system). */
function headline(r: Results) {
  const f = r.figures as Record<string, unknown>;
  const conv = f.convergenceMs as Record<string, number[]> | undefined;
  const convOf = (system: string) =>
    conv?.[system]?.length ? median(conv[system] as number[]) : (f[`${system}ConvergenceMs`] as number | undefined);
  const adm = f.admission as { withWebhooksMs: number[]; withoutWebhooksMs: number[] } | undefined;
  type Runs = LoadRun[];
  const load = f.webhookLoad as { kubeplug: Runs; bare: Runs } | undefined;
  const rps = load
    ? [median(load.kubeplug.map((x) => x.rps)), median(load.bare.map((x) => x.rps))]
    : [f.webhookServerRps as number | undefined, f.bareHttpsRps as number | undefined];
  // Paired rounds (the runs of 2026-11-26 on): the median of the rounds' ratios.
  const rpsRatio = load
    ? pairedRatio(load.kubeplug, load.bare, "rps")
    : rps[0] !== undefined && rps[1]
      ? rps[0] / rps[1]
      : undefined;
  const sizes = f.sizes as number[] | undefined;
  const [k, sc] = [f.kubeplugRssBytes as number[] | undefined, f.sampleControllerRssBytes as number[] | undefined];
  const perObject = (rss: number[] | undefined, perUnit: number) =>
    rss && sizes && sizes.length >= 2
      ? ((rss.at(-1) as number) - (rss[0] as number)) / (((sizes.at(-1) as number) - (sizes[0] as number)) * perUnit)
      : undefined;
  return {
    kubeplug: convOf("kubeplug"),
    rawFloor: convOf("rawFloor"),
    admissionP99: adm ? percentile(adm.withWebhooksMs, 99) - percentile(adm.withoutWebhooksMs, 99) : undefined,
    rps,
    rpsRatio,
    perObject: [perObject(k, 3), perObject(sc, 2)],
  };
}

/**
 * Before and after: the headline figures of every full run in the results directory, oldest first
 * (`earlier`), so each optimization's effect stays on record in the generated report.
 */
function historyTable(earlier: Results[], current: Results): string {
  const runs = [...earlier.filter((e) => !e.smoke && e.date !== current.date), current];
  if (runs.length < 2) return "";
  const rows = runs.map((run) => {
    const h = headline(run);
    const kib = (v: number | undefined) => (v === undefined ? "n/a" : `${(v / 1024).toFixed(2)}`);
    return `| ${run.date.slice(0, 16).replace("T", " ")} | ${s(h.kubeplug)} / ${s(h.rawFloor)} (${ratio(h.kubeplug, h.rawFloor)}) | ${ms(h.admissionP99)} | ${h.rps[0]?.toFixed(0) ?? "n/a"} / ${h.rps[1]?.toFixed(0) ?? "n/a"} (${times(h.rpsRatio)}) | ${kib(h.perObject[0])} / ${kib(h.perObject[1])} (${ratio(h.perObject[0], h.perObject[1])}) |`;
  });
  return `## Before and after (every full run on record)

| run | convergence: kubeplug / raw floor | admission overhead p99 | webhook req/s: kubeplug / bare | KiB per cached object: kubeplug / sample-controller |
|---|---|---|---|---|
${rows.join("\n")}

Runs before 2026-11-26: the raw floor ran 1 worker instead of 4 (a bug), so its convergence times and ratios are too
flattering to kubeplug; the webhook server then ran on express. What changed between runs: bench/README.md.

`;
}

/** The markdown report; `earlier` are earlier runs' results, for the before-and-after table. */
export function renderMarkdown(r: Results, earlier: Results[] = []): string {
  const f = r.figures as Record<string, never>;
  const rows: Row[] = [];
  const n = (r.sizes as unknown as { convergence: number }).convergence;
  const conv = f.convergenceMs as Record<string, number[]> | undefined;
  // Medians of the rounds, each shown with its range.
  const med = (system: string) => (conv?.[system]?.length ? median(conv[system] as number[]) : undefined);
  const shown = (system: string) => {
    const all = conv?.[system];
    if (!all?.length) return "n/a";
    if (all.length === 1) return s(all[0]);
    return `${s(med(system))} (${(Math.min(...all) / 1000).toFixed(2)}-${(Math.max(...all) / 1000).toFixed(2)})`;
  };
  if (conv) {
    const rounds = conv.kubeplug?.length ?? 0;
    const [kp, raw, kpFoo, scTuned, scShipped] = [
      "kubeplug",
      "rawFloor",
      "kubeplugFoo",
      "sampleControllerTuned",
      "sampleControllerShipped",
    ].map(med);
    rows.push([
      `Convergence, ${n} WebApps (vs raw API floor), median of ${rounds}`,
      shown("kubeplug"),
      shown("rawFloor"),
      ratio(kp, raw),
      "<= 1.1x",
      yes(kp !== undefined && raw ? kp / raw <= 1.1 : undefined),
    ]);
    const minimalFloor = med("minimalFloor");
    if (minimalFloor !== undefined) {
      rows.push([
        `Convergence, ${n} WebApps (vs the minimal-write floor: Deployment, Service, status only), median of ${rounds}`,
        shown("kubeplug"),
        shown("minimalFloor"),
        ratio(kp, minimalFloor),
        "<= 1.3x",
        yes(kp !== undefined && minimalFloor ? kp / minimalFloor <= 1.3 : undefined),
      ]);
      const echoFloor = med("minimalFloorWebhooks");
      if (echoFloor !== undefined) {
        rows.push([
          `Convergence, ${n} WebApps, the minimal-write floor behind bare echo webhooks (reference for kubeplug as deployed), median of ${rounds}`,
          shown("minimalFloorWebhooks"),
          shown("minimalFloor"),
          ratio(echoFloor, minimalFloor),
          "(reference)",
          "",
        ]);
      }
      const kpWebhooks = med("kubeplugWebhooks");
      if (kpWebhooks !== undefined) {
        rows.push([
          `Convergence, ${n} WebApps, kubeplug as deployed (webhooks on: finalizer at admission) vs the minimal-write floor, median of ${rounds}`,
          shown("kubeplugWebhooks"),
          shown("minimalFloor"),
          ratio(kpWebhooks, minimalFloor),
          "<= 1.3x",
          yes(kpWebhooks / minimalFloor <= 1.3),
        ]);
      }
    }
    const cpu = f.convergenceCpuMs as Record<"kubeplug" | "rawFloor", Record<string, number>[]> | undefined;
    if (cpu?.kubeplug.length && cpu.rawFloor.length) {
      // Median CPU seconds of each process over the rounds, kubeplug's setup against the raw floor's.
      const names = ["operator", "apiserver", "etcd", "controllerManager"];
      const cpuMed = (runs: Record<string, number>[], name: string) => median(runs.map((x) => x[name] ?? 0));
      const total = (runs: Record<string, number>[]) => median(runs.map((x) => names.reduce((a, k) => a + (x[k] ?? 0), 0)));
      const show = (runs: Record<string, number>[]) =>
        `${names.map((k) => (cpuMed(runs, k) / 1000).toFixed(2)).join(" / ")} (total ${(total(runs) / 1000).toFixed(2)} s)`;
      rows.push([
        "CPU seconds while converging, median: operator / kube-apiserver / etcd / controller manager",
        show(cpu.kubeplug),
        show(cpu.rawFloor),
        ratio(total(cpu.kubeplug), total(cpu.rawFloor)),
        "(diagnostic)",
        "",
      ]);
    }
    rows.push([
      `Convergence, ${n} Foos: kubeplug Foo plugin vs sample-controller (rate limit lifted, same workers, same 2 writes each), median of ${rounds}`,
      shown("kubeplugFoo"),
      shown("sampleControllerTuned"),
      ratio(kpFoo, scTuned),
      "< 1.0x",
      yes(kpFoo !== undefined && scTuned ? kpFoo < scTuned : undefined),
    ]);
    rows.push([
      `Convergence, ${n}: WebApps (4 writes each) vs sample-controller Foos (2 writes each)`,
      shown("kubeplug"),
      shown("sampleControllerTuned"),
      ratio(kp, scTuned),
      "(reference)",
      "",
    ]);
    const trails = f.kubeplugEventsTrail as { events: number; lastAfterMs: number }[] | undefined;
    if (trails?.length) {
      const counts = trails.map((t) => t.events);
      rows.push([
        `kubeplug's Events about each burst (their writes wait while its controllers work): how many, and the last written after convergence, median of ${trails.length} bursts`,
        `${Math.min(...counts)}-${Math.max(...counts)} Events, the last ${s(
          percentile(
            trails.map((t) => t.lastAfterMs),
            50,
          ),
        )} after`,
        "",
        "",
        "(diagnostic)",
        "",
      ]);
    }
    const audited = f.kubeplugAuditedConvergenceMs as number | undefined;
    if (audited !== undefined) {
      rows.push([
        `Convergence, ${n} WebApps, with the API server's audit log on (the idle pass; not in the rounds)`,
        s(audited),
        "",
        "",
        "(reference)",
        "",
      ]);
    }
    rows.push([
      `Convergence, ${n} (vs sample-controller as shipped: 5 qps, 2 workers)`,
      shown("kubeplug"),
      shown("sampleControllerShipped"),
      ratio(kp, scShipped),
      "(reference)",
      "",
    ]);
  }
  const idle = f.idle as
    | { seconds: number; operatorMetrics: Record<string, number>; auditLog: Record<string, number> }
    | undefined;
  if (idle) {
    const writes = (c: Record<string, number>, verbs: string[]) => verbs.reduce((sum, v) => sum + (c[v] ?? 0), 0);
    const mWrites = writes(idle.operatorMetrics, ["POST", "PUT", "PATCH", "DELETE"]);
    const aWrites = writes(idle.auditLog, ["create", "update", "patch", "delete"]);
    // client-go's metrics (and so kubeplug's) count a watch as a GET; the audit log tells them apart.
    const aWatches = idle.auditLog.watch ?? 0;
    const mGets = Math.max(0, (idle.operatorMetrics.GET ?? 0) - aWatches);
    const aGets = writes(idle.auditLog, ["get", "list"]);
    rows.push([
      `Idle ${idle.seconds} s after convergence: writes (metrics / audit log)`,
      `${mWrites} / ${aWrites}`,
      "",
      "",
      "0",
      yes(mWrites === 0 && aWrites === 0),
    ]);
    rows.push([
      `Idle ${idle.seconds} s: GETs and LISTs (metrics less watches / audit log)`,
      `${mGets} / ${aGets}`,
      "",
      "",
      "0",
      yes(mGets === 0 && aGets === 0),
    ]);
    rows.push([
      `Idle ${idle.seconds} s: watches started (audit log; each informer renews its watch every 60-75 s, the price of the 90 s stall bound)`,
      String(aWatches),
      "",
      "",
      "(reference)",
      "",
    ]);
  }
  type Shares = {
    calls: number;
    within5ms: number;
    within25ms: number;
    byType?: Record<string, { calls: number; within5ms: number; within25ms: number }>;
  };
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  /** Every round's calls together. */
  const total = (rounds: Shares[]): Shares =>
    rounds.reduce((a, b) => ({
      calls: a.calls + b.calls,
      within5ms: a.within5ms + b.within5ms,
      within25ms: a.within25ms + b.within25ms,
    }));
  // The goal's measure: the convergence bursts with webhooks on.
  const bursts = f.burstWebhookDuration as Shares[] | undefined;
  if (bursts?.length) {
    const sum = total(bursts);
    const [p5, p25] = [sum.within5ms / sum.calls, sum.within25ms / sum.calls];
    rows.push([
      `Webhook calls within 5 ms / 25 ms by the API server's histogram during the convergence bursts (webhooks on; ${sum.calls} calls in ${bursts.length} rounds)`,
      `${pct(p5)} / ${pct(p25)}`,
      "",
      "",
      ">= 90% / >= 99%",
      yes(p5 >= 0.9 && p25 >= 0.99),
    ]);
  }
  const echo = f.echoBurstWebhookDuration as Shares[] | undefined;
  if (echo?.length) {
    const sum = total(echo);
    rows.push([
      `The same for a bare echo webhook (bench/baselines/echo-webhook.ts) in front of the minimal-write floor's bursts (${sum.calls} calls): the floor of this measure on this machine`,
      `${pct(sum.within5ms / sum.calls)} / ${pct(sum.within25ms / sum.calls)}`,
      "",
      "",
      "(reference)",
      "",
    ]);
  }
  // By type (runs from the night of 2026-12-03 on): the validating calls compare the webhook servers
  // alone; a mutating call's duration also holds the API server applying the returned patch (the
  // echo returns none).
  const ofType = (rounds: Shares[] | undefined, type: string): Shares | undefined => {
    const typed = rounds?.map((r) => r.byType?.[type]).filter((t): t is Shares => t !== undefined);
    return typed?.length ? total(typed) : undefined;
  };
  for (const [type, label] of [
    ["validating", "validating calls only (no patch: the webhook servers alone)"],
    ["admit", "mutating calls only (kubeplug's carry a patch the API server applies inside the measure; the echo's none)"],
  ] as const) {
    const k = ofType(bursts, type);
    const e = ofType(echo, type);
    if (!k?.calls || !e?.calls) continue;
    rows.push([
      `Webhook calls within 5 ms / 25 ms during the bursts, ${label}: kubeplug / bare echo`,
      `${pct(k.within5ms / k.calls)} / ${pct(k.within25ms / k.calls)}`,
      `${pct(e.within5ms / e.calls)} / ${pct(e.within25ms / e.calls)}`,
      "",
      "(diagnostic)",
      "",
    ]);
  }
  const hist = f.apiserverWebhookDuration as Shares | undefined;
  if (hist?.calls) {
    const [p5, p25] = [hist.within5ms / hist.calls, hist.within25ms / hist.calls];
    rows.push([
      `Webhook calls within 5 ms / 25 ms by the API server's histogram, ${hist.calls} calls during the admission workload's real creates (one at a time)`,
      `${pct(p5)} / ${pct(p25)}`,
      "",
      "",
      bursts?.length ? "(diagnostic)" : ">= 90% / >= 99%",
      bursts?.length ? "" : yes(p5 >= 0.9 && p25 >= 0.99),
    ]);
  }
  const heal = f.kubeplugSelfHealMs as number[] | undefined;
  const scHeal = f.sampleControllerSelfHealMs as number[] | undefined;
  if (heal) {
    rows.push([
      `Self-heal p50, ${heal.length} Deployment deletions`,
      ms(percentile(heal, 50)),
      ms(scHeal && percentile(scHeal, 50)),
      ratio(percentile(heal, 50), scHeal && percentile(scHeal, 50)),
      "",
      "",
    ]);
    rows.push([
      "Self-heal p99",
      ms(percentile(heal, 99)),
      ms(scHeal && percentile(scHeal, 99)),
      ratio(percentile(heal, 99), scHeal && percentile(scHeal, 99)),
      "< 100 ms",
      yes(percentile(heal, 99) < 100),
    ]);
  }
  const adm = f.admission as { withWebhooksMs: number[]; withoutWebhooksMs: number[] } | undefined;
  if (adm) {
    const [w50, w99, o50, o99] = [
      percentile(adm.withWebhooksMs, 50),
      percentile(adm.withWebhooksMs, 99),
      percentile(adm.withoutWebhooksMs, 50),
      percentile(adm.withoutWebhooksMs, 99),
    ];
    rows.push([
      `Create round trip p50, ${adm.withWebhooksMs.length} creates (with webhooks vs without)`,
      ms(w50),
      ms(o50),
      ratio(w50, o50),
      "",
      "",
    ]);
    rows.push(["Create round trip p99 (with vs without)", ms(w99), ms(o99), ratio(w99, o99), "", ""]);
    // Not idle: each create's reconcile (four writes) competes for the same two cores. The goals under
    // load are the API server's webhook-duration shares; the idle p99 goal is the dry-run row's.
    rows.push(["Admission overhead p99 (difference), real creates", ms(w99 - o99), "", "", "(diagnostic)", ""]);
    const dry = (adm as { dryRun?: typeof adm }).dryRun;
    if (dry) {
      const [d50, d99] = [50, 99].map((p) => percentile(dry.withWebhooksMs, p) - percentile(dry.withoutWebhooksMs, p));
      rows.push([
        `Admission overhead p50 / p99 when idle: ${dry.withWebhooksMs.length} dry-run creates each way (nothing stored, so no reconcile load)`,
        `${ms(d50)} / ${ms(d99)}`,
        "",
        "",
        "p99 <= 3 ms",
        yes(d99 !== undefined && d99 <= 3),
      ]);
    }
    const echo = f.echoDryRun as (typeof dry & { apiserverCallMeanMs?: Record<string, number | undefined> }) | undefined;
    if (echo) {
      const [e50, e99] = [50, 99].map((p) => percentile(echo.withWebhooksMs, p) - percentile(echo.withoutWebhooksMs, p));
      rows.push([
        `The same through bare echo webhooks (bench/baselines/echo-webhook.ts: no parsing, no validation, no patch) on the same control plane: the floor of this measure on this machine`,
        `${ms(e50)} / ${ms(e99)}`,
        "",
        "",
        "(reference)",
        "",
      ]);
    }
    const idleCalls = [
      ["kubeplug", (dry as { apiserverCallMeanMs?: Record<string, number | undefined> } | undefined)?.apiserverCallMeanMs],
      ["echo", echo?.apiserverCallMeanMs],
    ] as const;
    if (idleCalls.every(([, m]) => m)) {
      rows.push([
        "Mean webhook call in the dry-run series as the API server times it, mutating / validating (a mutating call's includes applying the patch kubeplug returns: its finalizer)",
        idleCalls.map(([who, m]) => `${who} ${ms(m?.admit)} / ${ms(m?.validating)}`).join("; "),
        "",
        "",
        "(diagnostic)",
        "",
      ]);
    }
    const t = (
      adm as {
        timings?: {
          apiserverCallMeanMs: Record<string, number | undefined>;
          handlerMeanMs?: number;
          eventLoopLagP99Ms?: number;
          admissionLagP99Ms?: number;
        };
      }
    ).timings;
    if (t) {
      const calls = Object.entries(t.apiserverCallMeanMs)
        .map(([type, v]) => `${type === "admit" ? "mutating" : type} ${ms(v)}`)
        .join(", ");
      rows.push([
        "Where it goes (real creates): mean webhook call as the API server times it / as kubeplug's handler times it / event loop delay p99 of kubeplug's main thread / of its admission thread",
        `${calls} / ${ms(t.handlerMeanMs)} / ${ms(t.eventLoopLagP99Ms)} / ${ms(t.admissionLagP99Ms)}`,
        "",
        "",
        "(diagnostic)",
        "",
      ]);
    }
  }
  type LoadRuns = { rps: number; cpuUsPerRequest: number }[];
  const load = f.webhookLoad as { kubeplug: LoadRuns; bare: LoadRuns } | undefined;
  if (load) {
    const m = (runs: LoadRuns, key: "rps" | "cpuUsPerRequest") => median(runs.map((x) => x[key]));
    const [kRps, bRps, kCpu, bCpu] = [
      m(load.kubeplug, "rps"),
      m(load.bare, "rps"),
      m(load.kubeplug, "cpuUsPerRequest"),
      m(load.bare, "cpuUsPerRequest"),
    ];
    // Each round ran the two servers back to back: the ratio is the median of the rounds' ratios.
    const rpsRatio = pairedRatio(load.kubeplug, load.bare, "rps");
    rows.push([
      `Webhook server alone vs bare node HTTPS (req/s, medians of ${load.kubeplug.length} rounds; ratio: median of the rounds' ratios)`,
      kRps.toFixed(0),
      bRps.toFixed(0),
      times(rpsRatio),
      ">= 0.8x",
      yes(rpsRatio === undefined ? undefined : rpsRatio >= 0.8),
    ]);
    rows.push([
      "Webhook server CPU per request (same runs)",
      `${kCpu.toFixed(0)} us`,
      `${bCpu.toFixed(0)} us`,
      times(pairedRatio(load.kubeplug, load.bare, "cpuUsPerRequest")),
      "",
      "",
    ]);
  }
  const sizes = (r.sizes as unknown as { memory?: number[] }).memory ?? [];
  const kRss = f.kubeplugRssBytes as number[] | undefined;
  const sRss = f.sampleControllerRssBytes as number[] | undefined;
  if (kRss) {
    // Runs before the night of 2026-12-03 read RSS once, 3 s after converging; later runs read it settled too.
    const settle = (r.sizes as unknown as { memorySettleSeconds?: number }).memorySettleSeconds;
    const kAfter = f.kubeplugRssJustAfterBytes as number[] | undefined;
    const sAfter = f.sampleControllerRssJustAfterBytes as number[] | undefined;
    const when = settle ? `, ${settle} s after converging` : "";
    sizes.forEach((size, i) => {
      rows.push([
        `RSS with ${size} WebApps/Foos and their children in the cache${when}`,
        mib(kRss[i]),
        mib(sRss?.[i]),
        ratio(kRss[i], sRss?.[i]),
        size === GOAL_RSS_SIZE ? "<= 120 MiB" : "",
        size === GOAL_RSS_SIZE ? yes((kRss[i] as number) <= 120 * 2 ** 20) : "",
      ]);
    });
    if (kAfter?.length) {
      sizes.forEach((size, i) => {
        rows.push([
          `RSS with ${size} WebApps/Foos, 3 s after converging (before kubeplug's idle memory reduction)`,
          mib(kAfter[i]),
          mib(sAfter?.[i]),
          ratio(kAfter[i], sAfter?.[i]),
          "(diagnostic)",
          "",
        ]);
      });
    }
    const deployed = f.kubeplugDeployedRssBytes as number[] | undefined;
    const deployedAfter = f.kubeplugDeployedRssJustAfterBytes as number[] | undefined;
    if (deployed?.length) {
      rows.push([
        `RSS with ${(f.kubeplugDeployedSize as number | undefined) ?? sizes[0]} WebApps, kubeplug as deployed (webhooks on: the admission thread too)${when} / 3 s after`,
        `${mib(deployed[0])} / ${mib(deployedAfter?.[0])}`,
        "",
        "",
        "(reference)",
        "",
      ]);
    }
    if (sizes.length >= 2) {
      const span = (sizes.at(-1) as number) - (sizes[0] as number);
      // Per cached object: kubeplug caches a WebApp, a Deployment and a Service per unit; sample-controller a Foo and a Deployment.
      const kPer = ((kRss.at(-1) as number) - (kRss[0] as number)) / (span * 3);
      const sPer = sRss ? ((sRss.at(-1) as number) - (sRss[0] as number)) / (span * 2) : undefined;
      rows.push([
        "Memory per cached object (RSS growth / objects)",
        `${(kPer / 1024).toFixed(2)} KiB`,
        sPer === undefined ? "n/a" : `${(sPer / 1024).toFixed(2)} KiB`,
        ratio(kPer, sPer),
        "<= 1.0x",
        yes(sPer ? kPer <= sPer : undefined),
      ]);
    }
    rows.push([
      `Start to ready with ${sizes.at(-1)} WebApps (+ children)`,
      s(f.kubeplugStartToReadyMs as number | undefined),
      "",
      "",
      "",
      "",
    ]);
  }
  const table = [
    "| figure | kubeplug | baseline | ratio | target | met |",
    "|---|---|---|---|---|---|",
    ...rows.map((row) => `| ${row.join(" | ")} |`),
  ].join("\n");
  const peer = peprRows(f, conv, n, sizes, kRss);
  const peprTable = peer.length
    ? [
        "## Pepr, the TypeScript peer (same WebApp job, `pepr dev`, bench/peers/pepr)",
        "",
        "| figure | kubeplug | Pepr | kubeplug / Pepr |",
        "|---|---|---|---|",
        ...peer.map((row) => `| ${row.join(" | ")} |`),
        "",
      ].join("\n")
    : "Pepr was not part of this run (`npm run bench` includes it; `--only` without `pepr` leaves it out).\n";
  return `# Benchmark results

${r.smoke ? "**Smoke run (tiny sizes): checks the harness, not the figures.**\n\n" : ""}Run ${r.date} on ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, Linux ${r.machine.kernel}.
Versions: kubeplug ${r.versions.kubeplug}, Node ${r.versions.node}, Kubernetes ${r.versions.kubernetes} (local control plane, one per system), sample-controller ${r.versions.sampleController}.
${ranAtLine(r)}kubeplug runs as the image runs it: compiled JavaScript through bin/kubeplug (runs before 2026-12-03 evening ran the sources).
Each system runs against its own fresh control plane; kubeplug and the baselines use ${(r.sizes as unknown as { workers: number }).workers} workers.
Baselines: the raw API floor (bench/baselines/raw-floor.ts) makes exactly the operator's writes at the same concurrency;
sample-controller is measured as shipped and with client-go's rate limit lifted (bench/baselines/build-sample-controller.sh).
Pepr runs the same WebApp job as a Pepr 1.1.4 module under \`pepr dev\` (one process serves its webhooks and runs its watches).

${table}

${peprTable}
${historyTable(earlier, r)}Raw data: bench/results/${r.date.slice(0, 10)}.json. Regenerate with \`npm run bench\`.
`;
}

/** Rows comparing kubeplug with Pepr: [figure, kubeplug, Pepr, ratio]. */
function peprRows(
  f: Record<string, never>,
  conv: Record<string, number[]> | undefined,
  n: number,
  sizes: number[],
  kRss: number[] | undefined,
): [string, string, string, string][] {
  const rows: [string, string, string, string][] = [];
  const med = (xs: number[] | undefined) => (xs?.length ? median(xs) : undefined);
  if (conv?.pepr?.length) {
    rows.push([
      `Convergence, ${n} WebApps, median of ${conv.pepr.length}`,
      s(med(conv.kubeplug)),
      s(med(conv.pepr)),
      ratio(med(conv.kubeplug), med(conv.pepr)),
    ]);
  }
  const heal = f.kubeplugSelfHealMs as number[] | undefined;
  const pHeal = f.peprSelfHealMs as number[] | undefined;
  if (pHeal) {
    for (const p of [50, 99]) {
      const [k, q] = [heal && percentile(heal, p), percentile(pHeal, p)];
      rows.push([`Self-heal p${p}, ${pHeal.length} Deployment deletions`, ms(k), ms(q), ratio(k, q)]);
    }
  }
  type Adm = { withWebhooksMs: number[]; withoutWebhooksMs: number[] };
  const overhead = (a: Adm | undefined, p: number) =>
    a ? percentile(a.withWebhooksMs, p) - percentile(a.withoutWebhooksMs, p) : undefined;
  const [kAdm, pAdm] = [f.admission as Adm | undefined, f.peprAdmission as Adm | undefined];
  if (pAdm) {
    for (const p of [50, 99]) {
      rows.push([
        `Admission overhead p${p} (create with webhooks minus without)`,
        ms(overhead(kAdm, p)),
        ms(overhead(pAdm, p)),
        ratio(overhead(kAdm, p), overhead(pAdm, p)),
      ]);
    }
  }
  type Runs = { rps: number; cpuUsPerRequest: number }[];
  const kLoad = f.webhookLoad as { kubeplug: Runs; bare: Runs } | undefined;
  const pLoad = f.peprWebhookLoad as { pepr: Runs; bare: Runs } | undefined;
  if (pLoad) {
    const m = (runs: Runs | undefined, key: "rps" | "cpuUsPerRequest") => (runs ? median(runs.map((x) => x[key])) : undefined);

    rows.push([
      "Webhook server req/s (and as a share of the bare HTTPS server in the same run)",
      kLoad ? `${m(kLoad.kubeplug, "rps")?.toFixed(0)} (${times(pairedRatio(kLoad.kubeplug, kLoad.bare, "rps"))})` : "n/a",
      `${m(pLoad.pepr, "rps")?.toFixed(0)} (${times(pairedRatio(pLoad.pepr, pLoad.bare, "rps"))})`,
      ratio(m(kLoad?.kubeplug, "rps"), m(pLoad.pepr, "rps")),
    ]);
    rows.push([
      "Webhook server CPU per request",
      kLoad ? `${m(kLoad.kubeplug, "cpuUsPerRequest")?.toFixed(0)} us` : "n/a",
      `${m(pLoad.pepr, "cpuUsPerRequest")?.toFixed(0)} us`,
      ratio(m(kLoad?.kubeplug, "cpuUsPerRequest"), m(pLoad.pepr, "cpuUsPerRequest")),
    ]);
  }
  const pRss = f.peprRssBytes as number[] | undefined;
  if (pRss) {
    sizes.forEach((size, i) => {
      rows.push([`RSS with ${size} WebApps and their children`, mib(kRss?.[i]), mib(pRss[i]), ratio(kRss?.[i], pRss[i])]);
    });
    if (sizes.length >= 2) {
      // Over the sizes both reached (Pepr may stop before the largest): growth per object, each
      // WebApp being 3 cached objects (itself, its Deployment and its Service).
      const last = Math.min(kRss?.length ?? 0, pRss.length) - 1;
      const span = ((sizes[last] as number) - (sizes[0] as number)) * 3;
      const per = (r: number[] | undefined) => (r && last >= 1 ? ((r[last] as number) - (r[0] as number)) / span : undefined);
      const kb = (v: number | undefined) => (v === undefined ? "n/a" : `${(v / 1024).toFixed(2)} KiB`);
      rows.push([
        `Memory per cached object (RSS growth / objects, ${sizes[0]} to ${sizes[last] ?? "n/a"})`,
        kb(per(kRss)),
        kb(per(pRss)),
        ratio(per(kRss), per(pRss)),
      ]);
    }
    if (f.peprMemoryError) rows.push(["Pepr memory run stopped", "", String(f.peprMemoryError).replaceAll("|", "/"), ""]);
  }
  return rows;
}

/**
 * `npm run bench`: every benchmark on fresh local control planes, written to
 * bench/results/<date>.json and the table in bench/RESULTS.md. `--smoke` runs tiny sizes (the test
 * suite uses it to check the harness) and writes to `--out` instead. `--render` only rewrites
 * RESULTS.md from the newest results file.
 */

import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureBinaries, KUBERNETES_VERSION } from "../test/controlplane/index.ts";
import { type Results, renderMarkdown } from "./report.ts";
import { admissionWorkloads, convergenceWorkloads, FULL, memoryWorkloads, peprWorkloads, SMOKE } from "./workloads.ts";

const { values } = parseArgs({
  options: { smoke: { type: "boolean" }, out: { type: "string" }, only: { type: "string" }, render: { type: "boolean" } },
  strict: true,
});
const root = join(import.meta.dirname, "..");
const resultsDir = join(root, "bench", "results");
/** The full-run results files (`<date>.json`) in `dir`, oldest first. */
const dayFiles = (dir: string) =>
  existsSync(dir)
    ? readdirSync(dir)
        .filter((name) => /^\d{4}-\d{2}-\d{2}\.json$/.test(name))
        .sort()
    : [];
const readResults = (dir: string, name: string) => JSON.parse(readFileSync(join(dir, name), "utf8")) as Results;

// `--render`: only rewrite RESULTS.md from the newest results file (after a change to the report).
if (values.render) {
  const days = dayFiles(resultsDir);
  const newest = days.at(-1);
  if (!newest) {
    process.stderr.write(`bench --render: no results file (<date>.json) in ${resultsDir}; run \`npm run bench\` first\n`);
    process.exit(2);
  }
  const markdown = renderMarkdown(
    readResults(resultsDir, newest),
    days.slice(0, -1).map((name) => readResults(resultsDir, name)),
  );
  writeFileSync(join(root, "bench", "RESULTS.md"), markdown);
  process.stdout.write(markdown);
  process.exit(0);
}
const sizes = values.smoke ? SMOKE : FULL;
const WORKLOADS = ["convergence", "admission", "memory", "pepr"] as const;
const only = new Set((values.only ?? WORKLOADS.join(",")).split(",").map((w) => w.trim()));
for (const w of only) {
  if (!(WORKLOADS as readonly string[]).includes(w)) {
    process.stderr.write(`bench: unknown workload "${w}" in --only; choose from ${WORKLOADS.join(", ")} (comma-separated)\n`);
    process.exit(2);
  }
}
const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

const { execFileSync } = await import("node:child_process");
const bin = await ensureBinaries();
log("building the env-tunable sample-controller if missing (first run only)");
execFileSync(
  "flock",
  [
    join(bin.sampleControllerArtifacts as string, "..", "..", "kubernetes.lock"),
    "bash",
    join(root, "bench/baselines/build-sample-controller.sh"),
    join(bin.sampleControllerArtifacts as string, ".."),
  ],
  { stdio: "inherit" },
);

// Every Node process the benchmark starts (Pepr, the Foo plugin, the raw floor, the bare server)
// gets the young-generation size bin/kubeplug gives kubeplug, so RSS figures compare like with like.
process.env.NODE_OPTIONS = `--max-semi-space-size=16${process.env.NODE_OPTIONS ? ` ${process.env.NODE_OPTIONS}` : ""}`;

const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string };
const results: Results = {
  date: new Date().toISOString(),
  smoke: !!values.smoke,
  sizes,
  machine: {
    cpus: cpus().length,
    cpuModel: cpus()[0]?.model ?? "?",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
  },
  versions: {
    kubeplug: pkg.version,
    node: process.versions.node,
    kubernetes: KUBERNETES_VERSION,
    sampleController: `from Kubernetes ${KUBERNETES_VERSION} (Go, client-go)`,
  },
  figures: {},
};

// Pepr takes part in the convergence rounds and has its own admission and memory runs; `--only`
// without "pepr" leaves it out (it installs ~210 MB on first use).
const pepr = only.has("pepr");
// When each workload ran: a partial run merges into the day's file, so the report says which
// figures come from which run.
const ranAt: Record<string, string> = {};
const run = async (name: (typeof WORKLOADS)[number], fn: () => Promise<Record<string, unknown>>) => {
  ranAt[name] = new Date().toISOString();
  Object.assign(results.figures, await fn());
};
if (only.has("convergence")) await run("convergence", () => convergenceWorkloads(sizes, log, { pepr }));
if (only.has("admission")) await run("admission", () => admissionWorkloads(sizes, log));
if (only.has("memory")) await run("memory", () => memoryWorkloads(sizes, log));
if (pepr) await run("pepr", () => peprWorkloads(sizes, log));
results.figures.ranAt = ranAt;

const stamp = results.date.slice(0, 10);
const outDir = values.out ?? resultsDir;
mkdirSync(outDir, { recursive: true });
const file = join(outDir, `${stamp}.json`);
// A partial run (--only) replaces its own figures in the day's file and keeps the others.
if (values.only && existsSync(file)) {
  const earlier = readResults(outDir, `${stamp}.json`);
  if (earlier.smoke === results.smoke) {
    // One level deep: `convergenceMs` of a run without Pepr keeps Pepr's earlier rounds, and
    // `ranAt` keeps the times of the workloads not run now.
    const isMap = (v: unknown): v is Record<string, unknown> => !!v && typeof v === "object" && !Array.isArray(v);
    const merged: Record<string, unknown> = { ...earlier.figures };
    for (const [key, value] of Object.entries(results.figures)) {
      const before = merged[key];
      merged[key] = isMap(before) && isMap(value) ? { ...before, ...value } : value;
    }
    results.figures = merged;
  }
}
writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
const earlier = values.smoke
  ? []
  : dayFiles(outDir)
      .filter((name) => name !== `${stamp}.json`)
      .map((name) => readResults(outDir, name));
const markdown = renderMarkdown(results, earlier);
writeFileSync(values.out ? join(outDir, "RESULTS.md") : join(root, "bench", "RESULTS.md"), markdown);
process.stdout.write(markdown);
process.exit(0);

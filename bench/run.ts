/**
 * `npm run bench`: every benchmark on fresh local control planes, written to
 * bench/results/<date>.json and the table in bench/RESULTS.md. `--smoke` runs tiny sizes (the test
 * suite uses it to check the harness) and writes to `--out` instead.
 */

import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, release, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { ensureBinaries, KUBERNETES_VERSION } from "../test/controlplane/index.ts";
import { percentile } from "./lib/harness.ts";
import { type Results, renderMarkdown } from "./report.ts";
import { admissionWorkloads, convergenceWorkloads, FULL, memoryWorkloads, SMOKE } from "./workloads.ts";

const { values } = parseArgs({
  options: { smoke: { type: "boolean" }, out: { type: "string" }, only: { type: "string" } },
  strict: true,
});
const root = join(import.meta.dirname, "..");
const sizes = values.smoke ? SMOKE : FULL;
const only = new Set((values.only ?? "convergence,admission,memory").split(","));
const log = (m: string) => process.stderr.write(`[bench ${new Date().toISOString().slice(11, 19)}] ${m}\n`);

await ensureBinaries();
const { execFileSync } = await import("node:child_process");
const bin = await ensureBinaries();
const tunable = join(bin.sampleControllerArtifacts as string, "..", "bin", "sample-controller-tunable");
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
void tunable;

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

if (only.has("convergence")) Object.assign(results.figures, await convergenceWorkloads(sizes, log));
if (only.has("admission")) Object.assign(results.figures, await admissionWorkloads(sizes, log));
if (only.has("memory")) Object.assign(results.figures, await memoryWorkloads(sizes, log));

const stamp = results.date.slice(0, 10);
const outDir = values.out ?? join(root, "bench", "results");
mkdirSync(outDir, { recursive: true });
writeFileSync(join(outDir, `${stamp}.json`), `${JSON.stringify(results, null, 2)}\n`);
const markdown = renderMarkdown(results);
writeFileSync(values.out ? join(outDir, "RESULTS.md") : join(root, "bench", "RESULTS.md"), markdown);
process.stdout.write(markdown);
void percentile;
process.exit(0);

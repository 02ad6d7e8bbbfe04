/**
 * The kubeplug command starts without client-node's generated API (core/client/slim-client-node.ts):
 * no generated model is loaded, yet KubeConfig and the manager's modules are. A control run that
 * imports the whole client-node shows the recorder would see them. Every test that runs bin/kubeplug
 * against the control plane exercises the slimmed KubeConfig's loading and authentication.
 */
import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { slimClientNode } from "../../core/client/slim-client-node.ts";
import { exec } from "../support/exec.ts";

const root = fileURLToPath(new URL("../..", import.meta.url));
const dir = mkdtempSync(join(tmpdir(), "kubeplug-slim-"));
// Loaded with --import: records which client-node files the process evaluates and prints them at exit.
const recorder = join(dir, "recorder.mjs");
writeFileSync(
  recorder,
  `import { registerHooks } from "node:module";
const seen = [];
registerHooks({ load(url, context, next) { if (url.includes("/@kubernetes/client-node/dist/")) seen.push(url.slice(url.indexOf("/dist/") + 6)); return next(url, context); } });
process.on("exit", () => process.stderr.write("\\nLOADED " + JSON.stringify(seen) + "\\n"));
`,
);

async function run(args: string[]): Promise<{ stdout: string; files: string[] }> {
  const r = await exec(process.execPath, ["--import", recorder, ...args], { cwd: root });
  assert.equal(r.code, 0, `node ${args.join(" ")} failed:\n${r.stderr}`);
  const line = r.stderr.split("\n").find((l) => l.startsWith("LOADED "));
  assert.ok(line, `the recorder printed what was loaded:\n${r.stderr}`);
  return { stdout: r.stdout, files: JSON.parse(line.slice("LOADED ".length)) as string[] };
}

describe("client-node without its generated API", () => {
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("the hook installs with the client-node this package depends on", () => {
    assert.equal(slimClientNode(), true, "config.js still imports only what the shim provides");
  });

  it("kubeplug loads KubeConfig and the manager, and not one generated model", async () => {
    // `run --help` loads the whole runtime (`version` alone loads none of it).
    const { stdout, files } = await run([join(root, "cli/main.ts"), "run", "--help"]);
    assert.match(stdout, /^Usage: kubeplug run/);
    assert.ok(files.includes("config.js"), `KubeConfig is loaded: ${files.join(", ")}`);
    assert.deepEqual(
      files.filter((f) => f.startsWith("gen/models/") || f.startsWith("gen/apis/")),
      [],
      "no generated model or API class",
    );
  });

  it("control: importing the whole client-node loads the generated models", async () => {
    const { files } = await run(["--input-type=module", "-e", 'await import("@kubernetes/client-node")']);
    assert.ok(files.filter((f) => f.startsWith("gen/models/")).length > 100, "the recorder sees generated models");
  });
});

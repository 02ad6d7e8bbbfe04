/**
 * `kubeplug create plugin <name> --group G --version V --kind K [--cluster-scoped]`: writes a working
 * plugin (schema; reconciler, webhooks and plugin entry) and a test on the local control plane,
 * registers it in plugins/index.ts and regenerates the manifests. The result compiles, its test
 * passes, and `kubeplug run --plugins <name>` serves the new kind at once.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import { type Plugin, pluralOf } from "../core/runtime.ts";

const run = promisify(execFile);

/** A refusal: the message names the problem and what is allowed. */
export class ScaffoldError extends Error {
  override name = "ScaffoldError";
}

export const CREATE_HELP = `Usage: kubeplug create plugin <name> --group <group> --version <version> --kind <Kind> [--cluster-scoped]

Writes plugins/<name>/ (api.ts, index.ts) and test/plugins/<name>.test.ts,
adds the plugin to plugins/index.ts and runs the manifest generation.

Example:
  kubeplug create plugin backup --group backup.example.com --version v1 --kind BackupPolicy
`;

interface Options {
  name: string;
  group: string;
  version: string;
  kind: string;
  clusterScoped: boolean;
}

/** Parses and checks `create plugin` arguments against the repository's existing plugins. */
export function parseCreateArgs(argv: string[], root: string, existing: readonly Plugin[]): Options {
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        group: { type: "string" },
        version: { type: "string" },
        kind: { type: "string" },
        "cluster-scoped": { type: "boolean" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new ScaffoldError(`${(err as Error).message}\n\n${CREATE_HELP}`);
  }
  const [what, name] = parsed.positionals;
  const { group, version, kind } = parsed.values as { group?: string; version?: string; kind?: string };
  const problems: string[] = [];
  if (what !== "plugin") problems.push(`"create ${what ?? ""}": only "create plugin" exists`);
  if (!name || !/^[a-z]([-a-z0-9]{0,30}[a-z0-9])?$/.test(name)) {
    problems.push(`plugin name "${name ?? ""}" must be lower-case letters, digits and '-', starting with a letter (at most 32)`);
  }
  if (!group || !/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/.test(group)) {
    problems.push(`--group "${group ?? ""}" must be a DNS subdomain with at least one dot, e.g. backup.example.com`);
  }
  if (!version || !/^v[1-9][0-9]*((alpha|beta)[1-9][0-9]*)?$/.test(version)) {
    problems.push(`--version "${version ?? ""}" must look like v1, v2beta1 or v1alpha1`);
  }
  if (!kind || !/^[A-Z][A-Za-z0-9]{0,62}$/.test(kind))
    problems.push(`--kind "${kind ?? ""}" must be UpperCamelCase, e.g. BackupPolicy`);
  if (problems.length === 0) {
    if (existsSync(join(root, "plugins", name as string)) || existing.some((p) => p.name === name)) {
      problems.push(`a plugin named "${name}" already exists (plugins/${name})`);
    }
    const taken = existing
      .flatMap((p) => p.kinds.map((k) => ({ plugin: p.name, k })))
      .find(({ k }) => k.group === group && k.kind === kind);
    if (taken) problems.push(`kind ${kind} in group ${group} is already defined by plugin "${taken.plugin}"`);
    if (existsSync(join(root, "test", "plugins", `${name}.test.ts`)))
      problems.push(`test/plugins/${name}.test.ts already exists`);
  }
  if (problems.length > 0) throw new ScaffoldError(`cannot create the plugin:\n  - ${problems.join("\n  - ")}`);
  return {
    name: name as string,
    group: group as string,
    version: version as string,
    kind: kind as string,
    clusterScoped: !!parsed.values["cluster-scoped"],
  };
}

const camel = (name: string) => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function files(o: Options): Record<string, string> {
  const { name, group, version, kind, clusterScoped } = o;
  const plural = pluralOf(kind);
  const id = camel(name);
  const K = `${kind}Kind`;
  const childNs = clusterScoped ? `"default"` : `${kind.toLowerCase()}.metadata.namespace`;
  const lower = kind.toLowerCase();
  return {
    [`plugins/${name}/api.ts`]: `/** The ${kind} API (\`${group}/${version}\`): this zod schema is the source of the type, the CRD and the webhooks' checks. */
import { z } from "zod";
import { conditionSchema, defineKind, type ObjectOfKind } from "../../core/index.ts";

export const ${K} = defineKind({
  group: "${group}",
  version: "${version}",
  kind: "${kind}",
  scope: "${clusterScoped ? "Cluster" : "Namespaced"}",
  description: "A ${kind}. TODO: say what it is for.",
  spec: z.object({
    message: z.string().min(1, "message must not be empty").describe("What to store."),
    copies: z.number().int().min(1).max(5, "copies must be at most 5").default(1).describe("How many times (1..5)."),
  }),
  status: z.object({
    observedGeneration: z.number().int().optional().describe("The generation of the spec this status describes."),
    conditions: z.array(conditionSchema).optional().describe("Ready, following the Kubernetes API conventions."),
  }),
  printerColumns: [
    { name: "Copies", type: "integer", jsonPath: ".spec.copies" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
});

export type ${kind} = ObjectOfKind<typeof ${K}>;
`,
    [`plugins/${name}/index.ts`]: `/** The ${name} plugin: each ${kind} keeps a ConfigMap and reports Ready. Replace with what your operator does. */
import { Action, definePlugin, generationChanged, k8s, withConditions } from "../../core/index.ts";
import { ${K} } from "./api.ts";

export { type ${kind}, ${K} } from "./api.ts";

const READY = { Ready: { status: true, reason: "Synced", message: "The ConfigMap matches the spec" } };

export const ${id}Plugin = definePlugin({
  name: "${name}",
  kinds: [${K}],
  setup(ctx) {
    ctx
      .controller("${name}")
      .for(${K}, { predicates: [generationChanged()] })
      .owns(k8s.ConfigMap)
      .reconcile(async (${lower}, r) => {
        const key = { name: \`\${${lower}.metadata.name}-${lower}\`, namespace: ${childNs} };
        await r.own(k8s.ConfigMap, key, (cm) => {
          cm.data = { message: ${lower}.spec.message.repeat(${lower}.spec.copies) };
        });
        await r.status((current) => ({
          observedGeneration: current.metadata.generation,
          conditions: withConditions(current, READY),
        }));
        return Action.awaitChange();
      });
    // Defaults and field checks come from the schema; add what it cannot say (immutable fields, rules across objects).
    ctx
      .webhooks(${K})
      .default()
      .validate((${lower}, { oldObject }) => {
        const { message } = ${lower}.spec;
        if (!oldObject || oldObject.spec.message === message || !message.startsWith("!")) return {};
        return { causes: [{ field: "spec.message", message: \`Invalid value: "\${message}": must not start with "!" on update\` }] };
      });
  },
});

export default ${id}Plugin;
`,
    [`test/plugins/${name}.test.ts`]: `import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds } from "../../cli/install.ts";
import { RestClient } from "../../core/runtime.ts";
import { ${id}Plugin } from "../../plugins/${name}/index.ts";
import { type ControlPlane, startControlPlane } from "../controlplane/index.ts";
import { startTestManager, type TestManager } from "../support/manager.ts";
import { waitFor } from "../support/wait.ts";

describe("${name} plugin", () => {
  let cp: ControlPlane;
  let tm: TestManager;
  let rest: RestClient;
  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    rest = await RestClient.create(cp.kubeConfig);
    await installCrds(rest, [${id}Plugin]);
    tm = await startTestManager(cp.kubeconfigPath, [${id}Plugin], { flags: ["--plugins", "${name}"] });
  });
  after(async () => {
    await tm?.stop();
    await rest?.close();
    await cp?.stop();
  });

  it("reconciles a ${kind} into its ConfigMap and reports Ready", async () => {
    const base = "/apis/${group}/${version}${clusterScoped ? "" : "/namespaces/default"}/${plural}";
    await rest.request("POST", base, {
      body: { apiVersion: "${group}/${version}", kind: "${kind}", metadata: { name: "first" }, spec: { message: "hi", copies: 2 } },
    });
    const cm = await waitFor("the ConfigMap", async () =>
      rest.request<{ data: Record<string, string> }>("GET", "/api/v1/namespaces/default/configmaps/first-${lower}").catch(() => undefined),
    );
    assert.equal(cm.data.message, "hihi");
    const ready = await waitFor("Ready", async () => {
      const obj = await rest.request<{ status?: { conditions?: { type: string; status: string }[] } }>("GET", \`\${base}/first\`);
      return obj.status?.conditions?.find((c) => c.type === "Ready" && c.status === "True");
    });
    assert.equal(ready.status, "True");
  });
});
`,
  };
}

function register(root: string, o: Options): void {
  const path = join(root, "plugins/index.ts");
  let text = readFileSync(path, "utf8");
  const id = `${camel(o.name)}Plugin`;
  const lines = text.split("\n");
  const lastImport =
    lines
      .map((l, i) => (l.startsWith("import ") ? i : -1))
      .filter((i) => i >= 0)
      .pop() ?? 0;
  lines.splice(lastImport + 1, 0, `import { ${id} } from "./${o.name}/index.ts";`);
  text = lines.join("\n");
  const m = /export const plugins: readonly Plugin\[\] = \[([^\]]*)\];/.exec(text);
  if (!m)
    throw new ScaffoldError("plugins/index.ts has no `export const plugins: readonly Plugin[] = [...]` to add the plugin to");
  const entries = (m[1] as string).trim();
  text = text.replace(m[0], `export const plugins: readonly Plugin[] = [${entries ? `${entries}, ` : ""}${id}];`);
  writeFileSync(path, text);
}

/** Runs `create plugin`; returns the files written. */
export async function createPlugin(
  argv: string[],
  root: string,
  existing: readonly Plugin[],
  log: (m: string) => void,
): Promise<string[]> {
  const o = parseCreateArgs(argv, root, existing);
  const written: string[] = [];
  for (const [path, content] of Object.entries(files(o))) {
    mkdirSync(join(root, path, ".."), { recursive: true });
    writeFileSync(join(root, path), content);
    written.push(path);
  }
  register(root, o);
  written.push("plugins/index.ts");
  log(`wrote ${written.join(", ")}`);
  const { stdout } = await run(process.execPath, [join(root, "cli/main.ts"), "manifests"], { cwd: root });
  log(stdout.trim());
  log(`next: node --test test/plugins/${o.name}.test.ts, then kubeplug run --plugins ${o.name} --install`);
  return written;
}

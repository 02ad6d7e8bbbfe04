/**
 * `kubeplug create plugin <name> --group G --version V --kind K [--cluster-scoped]`: writes a working
 * plugin (schema, reconciler, webhooks, plugin entry) and a test on the local control plane,
 * registers it in plugins/index.ts and regenerates the manifests. The result compiles, its test
 * passes, and `kubeplug run --plugins <name>` serves the new kind at once.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs, promisify } from "node:util";
import type { Plugin } from "../core/index.ts";

const run = promisify(execFile);

/** A refusal: the message names the problem and what is allowed. */
export class ScaffoldError extends Error {
  override name = "ScaffoldError";
}

export const CREATE_HELP = `Usage: kubeplug create plugin <name> --group <group> --version <version> --kind <Kind> [--cluster-scoped]

Writes plugins/<name>/ (api.ts, reconciler.ts, webhooks.ts, index.ts) and test/plugins/<name>.test.ts,
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

/** English plural of a kind, lower-case, as Kubernetes names resources (policy -> policies, bus -> buses). */
export function pluralOf(kind: string): string {
  const k = kind.toLowerCase();
  if (/[^aeiou]y$/.test(k)) return `${k.slice(0, -1)}ies`;
  if (/(s|x|z|ch|sh)$/.test(k)) return `${k}es`;
  return `${k}s`;
}

const camel = (name: string) => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

function files(o: Options): Record<string, string> {
  const { name, group, version, kind, clusterScoped } = o;
  const plural = pluralOf(kind);
  const id = camel(name);
  const K = `${kind}Kind`;
  const childNs = clusterScoped ? `"default"` : `${kind.toLowerCase()}.metadata.namespace as string`;
  const lower = kind.toLowerCase();
  return {
    [`plugins/${name}/api.ts`]: `/** The ${kind} API (\`${group}/${version}\`). This zod schema is the source of the type, the CRD and the webhooks. */
import { z } from "zod";
import { conditionSchema, defineKind, type ObjectOfKind } from "../../core/index.ts";

export const ${id}Spec = z
  .object({
    message: z.string().min(1, "message must not be empty").max(1000, "message must be at most 1000 characters").describe("What to store."),
    copies: z.number().int().min(1, "copies must be between 1 and 5").max(5, "copies must be between 1 and 5").default(1).describe("How many times (1..5)."),
  })
  .describe("Desired state of the ${kind}.");

export const ${id}Status = z
  .object({
    observedGeneration: z.number().int().min(0).optional().describe("The generation of the spec this status describes."),
    conditions: z.array(conditionSchema).optional().describe("Ready, following the Kubernetes API conventions."),
  })
  .describe("Observed state of the ${kind}.");

export const ${K} = defineKind({
  group: "${group}",
  version: "${version}",
  kind: "${kind}",
  plural: "${plural}",
  scope: "${clusterScoped ? "Cluster" : "Namespaced"}",
  description: "A ${kind}. TODO: say what it is for.",
  spec: ${id}Spec,
  status: ${id}Status,
  printerColumns: [
    { name: "Copies", type: "integer", jsonPath: ".spec.copies" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
});

export type ${kind} = ObjectOfKind<typeof ${K}>;
`,
    [`plugins/${name}/reconciler.ts`]: `/** Keeps a ConfigMap owned by each ${kind} and reports Ready. Replace with what your operator does. */
import {
  Action,
  ConfigMapKind,
  controllerReference,
  createOrUpdate,
  type ReconcileContext,
  type Request,
  setCondition,
  writeStatus,
} from "../../core/index.ts";
import { ${K} } from "./api.ts";

export async function reconcile${kind}(request: Request, ctx: ReconcileContext) {
  const ${lower} = await ctx.client.get(${K}, request.name, request.namespace);
  if (!${lower}) return Action.awaitChange(); // deleted: owned children are garbage-collected
  const child = await createOrUpdate(ctx.client, ConfigMapKind, { name: \`\${request.name}-${lower}\`, namespace: ${childNs} }, (cm) => {
    cm.metadata.ownerReferences = [controllerReference(${lower}, ${K})];
    cm.data = { message: ${lower}.spec.message.repeat(${lower}.spec.copies) };
  });
  if (child.result !== "unchanged") ctx.recorder.event(${lower}, "Normal", "Synced", \`\${child.result} ConfigMap \${child.object.metadata.name}\`);
  await writeStatus(ctx.client, ${K}, ${lower}, (current) => ({
    observedGeneration: current.metadata.generation,
    conditions: setCondition(current.status?.conditions, {
      type: "Ready",
      status: "True",
      reason: "Synced",
      message: "The ConfigMap matches the spec",
      observedGeneration: current.metadata.generation,
    }),
  }));
  return Action.awaitChange();
}
`,
    [`plugins/${name}/webhooks.ts`]: `/**
 * ${kind} admission. Defaults and field checks come from the schema (api.ts); add here what a
 * schema cannot say (immutable fields, rules across objects) as causes, or warnings.
 */
import type { AdmissionContext, ValidationResult } from "../../webhooks/index.ts";
import type { ${kind} } from "./api.ts";

export function validate${kind}(${lower}: ${kind}, ctx: AdmissionContext<${kind}>): ValidationResult {
  const old = ctx.oldObject;
  if (old && old.spec.message !== ${lower}.spec.message && ${lower}.spec.message.startsWith("!")) {
    return { causes: [{ field: "spec.message", message: \`Invalid value: "\${${lower}.spec.message}": must not start with "!" on update\` }] };
  }
  return {};
}
`,
    [`plugins/${name}/index.ts`]: `/** The ${name} plugin: ${kind} (\`${group}/${version}\`). */
import { ConfigMapKind, definePlugin, generationChanged } from "../../core/index.ts";
import { WEBHOOKS } from "../../webhooks/index.ts";
import { ${K} } from "./api.ts";
import { reconcile${kind} } from "./reconciler.ts";
import { validate${kind} } from "./webhooks.ts";

export { type ${kind}, ${K} } from "./api.ts";

export const ${id}Plugin = definePlugin({
  name: "${name}",
  kinds: [${K}],
  // Exactly what the reconciler uses: generated into the chart's ClusterRole.
  rbac: [
    { apiGroups: ["${group}"], resources: ["${plural}"], verbs: ["get", "list", "watch"] },
    { apiGroups: ["${group}"], resources: ["${plural}/status"], verbs: ["get", "update", "patch"] },
    { apiGroups: [""], resources: ["configmaps"], verbs: ["get", "list", "watch", "create", "update", "patch"] },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  ],
  setup(ctx) {
    ctx.controller("${name}").for(${K}, { predicates: [generationChanged()] }).owns(ConfigMapKind).reconcile(reconcile${kind});
    ctx.extension(WEBHOOKS).defaulter(${K}).validator(${K}, validate${kind});
  },
});
`,
    [`test/plugins/${name}.test.ts`]: `import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { installCrds } from "../../cli/install.ts";
import { RestClient } from "../../core/index.ts";
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

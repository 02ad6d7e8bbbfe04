/**
 * `kubeplug create plugin <name> --group G --version V --kind K [--cluster-scoped] [--dir DIR]`:
 * writes a working plugin (schema; reconciler, webhooks and plugin entry), a sample object and a test
 * on the local control plane. Without --dir, into this checkout (plugins/<name>, registered in
 * plugins/index.ts, manifests regenerated) for kubeplug's contributors; with --dir, as a new npm
 * package that takes kubeplug as a peer dependency, for everyone else.
 */
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { isAbsolute, join, resolve } from "node:path";
import { parseArgs, promisify } from "node:util";
import type { Plugin } from "../core/runtime.ts";
import { packageRoot } from "./paths.ts";

const run = promisify(execFile);
const VERSION = (JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string }).version;

/** A refusal: the message names the problem and what is allowed. */
export class ScaffoldError extends Error {
  override name = "ScaffoldError";
}

export const CREATE_HELP = `Usage: kubeplug create plugin <name> --group <group> --version <version> --kind <Kind>
         [--cluster-scoped] [--dir DIR [--kubeplug SPEC]]

With --dir: writes a new npm package at DIR (package.json with kubeplug as a peer dependency and the
scripts build, test and manifests; tsconfig.json; src/api.ts and src/index.ts; a test on
kubeplug/testing; samples/; README.md; a Dockerfile on kubeplug's image). --kubeplug sets the
kubeplug dependency: a version range (default ^${VERSION}) or a path to a tarball from npm pack.
Without --dir (contributors, in a kubeplug checkout): writes plugins/<name>/ (api.ts, index.ts,
samples/) and test/plugins/<name>.test.ts, adds the plugin to plugins/index.ts and regenerates the
manifests.

Examples:
  kubeplug create plugin backup --group backup.example.com --version v1 --kind BackupPolicy --dir ./backup
  kubeplug create plugin backup --group backup.example.com --version v1 --kind BackupPolicy
`;

interface Options {
  name: string;
  group: string;
  version: string;
  kind: string;
  clusterScoped: boolean;
  /** Set: write a standalone package there. */
  dir?: string;
  /** The kubeplug dependency of a standalone package (a range, or a tarball path made absolute). */
  kubeplug: string;
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
        dir: { type: "string" },
        kubeplug: { type: "string" },
      },
      strict: true,
      allowPositionals: true,
    });
  } catch (err) {
    throw new ScaffoldError(`${(err as Error).message}\n\n${CREATE_HELP}`);
  }
  const [what, name] = parsed.positionals;
  const { group, version, kind, dir, kubeplug } = parsed.values as {
    group?: string;
    version?: string;
    kind?: string;
    dir?: string;
    kubeplug?: string;
  };
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
  if (kubeplug !== undefined && dir === undefined) problems.push("--kubeplug only applies with --dir");
  if (dir !== undefined && existsSync(dir) && readdirSync(dir).length > 0) problems.push(`--dir ${dir} exists and is not empty`);
  if (problems.length === 0 && dir === undefined) {
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
    ...(dir !== undefined ? { dir: resolve(dir) } : {}),
    kubeplug: dependencySpec(kubeplug),
  };
}

/** A version range as given; a tarball or directory path as `file:` with an absolute path. */
function dependencySpec(spec: string | undefined): string {
  if (spec === undefined) return `^${VERSION}`;
  if (spec.endsWith(".tgz") || spec.startsWith(".") || isAbsolute(spec)) return `file:${resolve(spec.replace(/^file:/, ""))}`;
  return spec;
}

const camel = (name: string) => name.replace(/-([a-z0-9])/g, (_, c: string) => c.toUpperCase());

/** Where the generated files go and what they import, per layout. */
interface Layout {
  /** The plugin API: the checkout's core, or the package. */
  api: string;
  /** kubeplug/testing. */
  testing: string;
  /** Directory of api.ts and index.ts; of the sample; the test file; and the plugin entry as the test imports it. */
  src: string;
  samples: string;
  test: string;
  entryFromTest: string;
}

function layoutOf(o: Options): Layout {
  return o.dir
    ? {
        api: "kubeplug",
        testing: "kubeplug/testing",
        src: "src",
        samples: "samples",
        test: `test/${o.name}.test.ts`,
        entryFromTest: "../src/index.ts",
      }
    : {
        api: "../../core/index.ts",
        testing: "../testing.ts",
        src: `plugins/${o.name}`,
        samples: `plugins/${o.name}/samples`,
        test: `test/plugins/${o.name}.test.ts`,
        entryFromTest: `../../plugins/${o.name}/index.ts`,
      };
}

/** Import lines in the order the formatter keeps: packages by name, then relative paths. */
function imports(L: Layout, api: string, other: string): string {
  return L.api.startsWith(".") ? `${other}\n${api}` : `${api}\n${other}`;
}

function files(o: Options): Record<string, string> {
  const { name, group, version, kind, clusterScoped } = o;
  const id = camel(name);
  const K = `${kind}Kind`;
  const childNs = clusterScoped ? `"default"` : `${kind.toLowerCase()}.metadata.namespace`;
  const lower = kind.toLowerCase();
  const L = layoutOf(o);
  const sources: Record<string, string> = {
    [`${L.src}/api.ts`]: `/** The ${kind} API (\`${group}/${version}\`): this zod schema is the source of the type, the CRD and the webhooks' checks. */
${imports(L, `import { conditionSchema, defineKind, type ObjectOfKind } from "${L.api}";`, `import { z } from "zod";`)}

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
    [`${L.src}/index.ts`]: `/** The ${name} plugin: each ${kind} keeps a ConfigMap and reports Ready. Replace with what your operator does. */
import { Action, definePlugin, generationChanged, k8s, withConditions } from "${L.api}";
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
    [`${L.samples}/${lower}.yaml`]: `# A sample ${kind}: kubectl apply -f this file; its ConfigMap sample-${lower} follows.
apiVersion: ${group}/${version}
kind: ${kind}
metadata:
  name: sample${clusterScoped ? "" : "\n  namespace: default"}
spec:
  message: hello
  copies: 2
`,
    [L.test]: `import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { k8s } from "${L.api}";
import { type ControlPlane, installCrds, startControlPlane, startManager, type TestManager, waitFor } from "${L.testing}";
import { ${K}, ${id}Plugin } from "${L.entryFromTest}";

describe("${name} plugin", () => {
  let cp: ControlPlane;
  let tm: TestManager;
  before(async () => {
    cp = await startControlPlane({ controllerManager: false });
    await installCrds(cp, [${id}Plugin]);
    tm = await startManager(cp, [${id}Plugin]);
  });
  after(async () => {
    await tm?.stop();
    await cp?.stop();
  });

  it("reconciles a ${kind} into its ConfigMap and reports Ready", async () => {
    const { client } = tm.manager;
    const metadata = { name: "first"${clusterScoped ? "" : `, namespace: "default"`} };
    await client.create(${K}, { metadata, spec: { message: "hi", copies: 2 } });
    const cm = await waitFor("the ConfigMap", () => client.reader.get(k8s.ConfigMap, "first-${lower}", "default"));
    assert.equal(cm.data?.message, "hihi");
    const ready = await waitFor("Ready", async () => {
      const obj = await client.reader.get(${K}, "first"${clusterScoped ? "" : `, "default"`});
      return obj?.status?.conditions?.find((c) => c.type === "Ready" && c.status === "True");
    });
    assert.equal(ready.reason, "Synced");
  });
});
`,
  };
  return o.dir ? { ...sources, ...packageFiles(o) } : sources;
}

/** The files that make a standalone plugin an npm package. */
function packageFiles(o: Options): Record<string, string> {
  const pkg = {
    name: `kubeplug-plugin-${o.name}`,
    version: "0.1.0",
    description: `A kubeplug plugin: ${o.kind} (${o.group}/${o.version}).`,
    type: "module",
    main: "./dist/index.js",
    types: "./dist/index.d.ts",
    exports: { ".": { types: "./dist/index.d.ts", default: "./dist/index.js" } },
    files: ["dist/", "samples/", "manifests/"],
    engines: { node: ">=24" },
    scripts: {
      build: "tsc -p tsconfig.json",
      test: "node --test --test-reporter=spec test/*.test.ts",
      manifests: "kubeplug manifests --plugin . --out manifests",
    },
    // One copy of kubeplug and zod in a process: the manager's. The dev dependencies are for build and test.
    peerDependencies: { kubeplug: `>=${VERSION}`, zod: "^4.0.0" },
    devDependencies: { "@types/node": "^24.0.0", kubeplug: o.kubeplug, node: "^24.21.0", typescript: "5.9", zod: "^4.6.7" },
    allowScripts: { node: true },
  };
  const tsconfig = {
    compilerOptions: {
      target: "ES2023",
      module: "NodeNext",
      moduleResolution: "NodeNext",
      lib: ["ES2023"],
      types: ["node"],
      strict: true,
      declaration: true,
      outDir: "dist",
      rootDir: "src",
      verbatimModuleSyntax: true,
      erasableSyntaxOnly: true,
      allowImportingTsExtensions: true,
      rewriteRelativeImportExtensions: true,
      skipLibCheck: true,
    },
    include: ["src"],
  };
  const lower = o.kind.toLowerCase();
  return {
    "package.json": `${JSON.stringify(pkg, null, 2)}\n`,
    "tsconfig.json": `${JSON.stringify(tsconfig, null, 2)}\n`,
    ".gitignore": "node_modules/\ndist/\n*.tgz\n",
    Dockerfile: `# kubeplug's image plus this plugin: build kubeplug's image first (its Dockerfile), then
#   docker build --build-arg KUBEPLUG_IMAGE=<kubeplug image> -t <registry>/${pkg.name}:0.1.0 .
# The plugin is installed beside kubeplug in /app/node_modules, so it shares kubeplug's one copy.
ARG KUBEPLUG_IMAGE=kubeplug:${VERSION}
FROM node:24-bookworm-slim AS build
WORKDIR /src
COPY . .
RUN npm install --no-audit --no-fund && npm run build && npm pack --ignore-scripts --pack-destination /out

FROM \${KUBEPLUG_IMAGE}
USER root
COPY --from=build /out/${pkg.name}-0.1.0.tgz /tmp/plugin.tgz
RUN cd /app && npm install --omit=dev --omit=peer --no-audit --no-fund --ignore-scripts /tmp/plugin.tgz && rm /tmp/plugin.tgz
USER 65532:65532
ENV KUBEPLUG_PLUGIN=${pkg.name}
`,
    "README.md": `# ${pkg.name}

A [kubeplug](https://www.npmjs.com/package/kubeplug) plugin: the ${o.kind} kind (\`${o.group}/${o.version}\`).
Each ${o.kind} keeps a ConfigMap with its message repeated \`copies\` times and reports \`Ready\`;
replace that with what your operator does (\`src/index.ts\`, \`src/api.ts\`).

\`\`\`sh
npm install          # kubeplug, zod, TypeScript and Node 24 as dev dependencies
npm test             # the plugin on a local control plane (kubeplug/testing; first run builds it, cached after)
npm run build        # dist/ with type declarations
npm run manifests    # manifests/: the CRD, least-privilege RBAC and webhook configuration
npx kubeplug run --plugin . --plugins= --install --kubeconfig ~/.kube/config   # this plugin alone, on your cluster
kubectl apply -f samples/${lower}.yaml
\`\`\`

\`--plugins=\` leaves kubeplug's built-in plugins out; \`--install\` applies the CRD and registers the
webhooks for a manager running on your machine. In a cluster, build the image with the Dockerfile
(kubeplug's image plus this package) and install kubeplug's Helm chart with it (see kubeplug's
README, "Publish a plugin").
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
  const target = o.dir ?? root;
  const written: string[] = [];
  for (const [path, content] of Object.entries(files(o))) {
    mkdirSync(join(target, path, ".."), { recursive: true });
    writeFileSync(join(target, path), content);
    written.push(path);
  }
  if (o.dir) {
    log(`wrote ${o.dir}: ${written.join(", ")}`);
    log(`next: cd ${o.dir} && npm install && npm test`);
    return written;
  }
  register(root, o);
  written.push("plugins/index.ts");
  log(`wrote ${written.join(", ")}`);
  const { stdout } = await run(process.execPath, [join(root, "cli/main.ts"), "manifests"], { cwd: root });
  log(stdout.trim());
  log(`next: node --test test/plugins/${o.name}.test.ts, then kubeplug run --plugins ${o.name} --install`);
  return written;
}

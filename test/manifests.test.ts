/**
 * The generated manifests: the checked-in chart files match what `npm run manifests` generates from
 * the plugins, and the WebApp CRD says what the zod schema says (printer columns, defaults, bounds,
 * descriptions), both as generated and as a real API server serves it to `kubectl explain`.
 */
import assert from "node:assert/strict";
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";
import { load } from "js-yaml";
import { generateManifests, writeManifests } from "../cli/manifests.ts";
import { crdOf, RestClient } from "../core/runtime.ts";
import { plugins } from "../plugins/index.ts";
import { WebAppKind, webAppSpec } from "../plugins/webapp/api.ts";
import { type ControlPlane, ensureTools, startControlPlane, type Tools } from "./controlplane/index.ts";
import { waitFor } from "./support/wait.ts";

const run = promisify(execFile);
const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const CRD_NAME = "webapps.webapp.example.com";
const CHART_CRD = `charts/kubeplug/crds/${CRD_NAME}.yaml`;
const VALUES_SCHEMA = "charts/kubeplug/values.schema.json";

interface SchemaProps {
  type?: string;
  description?: string;
  default?: unknown;
  minimum?: number;
  maximum?: number;
  minLength?: number;
  pattern?: string;
  enum?: unknown[];
  required?: string[];
  properties?: Record<string, SchemaProps>;
}
interface Crd {
  spec: {
    versions: {
      name: string;
      additionalPrinterColumns?: { name: string; type: string; jsonPath: string }[];
      schema: { openAPIV3Schema: SchemaProps };
    }[];
  };
  status?: { conditions?: { type: string; status: string }[] };
}

/** The WebApp CRD says what the schema says: columns, defaults, bounds, and a description everywhere in spec. */
function assertWebAppCrd(crd: Crd): void {
  const version = crd.spec.versions[0];
  assert.ok(version, "one version");
  assert.deepEqual(
    version.additionalPrinterColumns?.map((c) => [c.name, c.type, c.jsonPath]),
    [
      ["Image", "string", ".spec.image"],
      ["Replicas", "integer", ".spec.replicas"],
      ["Available", "integer", ".status.availableReplicas"],
      ["Age", "date", ".metadata.creationTimestamp"],
    ],
  );
  const spec = version.schema.openAPIV3Schema.properties?.spec;
  assert.ok(spec?.properties, "spec has properties");
  const p = spec.properties;
  const pick = (s: SchemaProps | undefined) => ({
    type: s?.type,
    default: s?.default,
    minimum: s?.minimum,
    maximum: s?.maximum,
    enum: s?.enum,
  });
  assert.deepEqual(pick(p.replicas), { type: "integer", default: 1, minimum: 1, maximum: 10, enum: undefined });
  assert.deepEqual(pick(p.port), { type: "integer", default: 8080, minimum: 1, maximum: 65535, enum: undefined });
  assert.deepEqual(pick(p.serviceType), {
    type: "string",
    default: "ClusterIP",
    minimum: undefined,
    maximum: undefined,
    enum: ["ClusterIP", "NodePort"],
  });
  assert.equal(p.image?.type, "string");
  assert.equal(p.image?.minLength, 1);
  assert.ok(p.image?.pattern, "image has a pattern");
  assert.deepEqual(spec.required, ["image"], "only image is required; the rest has defaults");
  assert.ok(spec.description, "spec has a description");
  assert.deepEqual(Object.keys(p).sort(), ["image", "port", "replicas", "serviceType"]);
  for (const [field, schema] of Object.entries(p)) assert.ok(schema.description?.trim(), `spec.${field} has a description`);
}

const oneLine = (s: string) => s.replace(/\s+/g, " ").trim();

describe("generated manifests", () => {
  it("match the checked-in CRDs and templates", async () => {
    const files = (await generateManifests(plugins, root)).filter((f) => f.path !== VALUES_SCHEMA);
    assert.ok(
      files.some((f) => f.path === CHART_CRD),
      "the WebApp CRD is generated",
    );
    assert.deepEqual(writeManifests(root, files, true), [], "run: npm run manifests");
  });

  it("match the checked-in values.schema.json", async () => {
    const files = (await generateManifests(plugins, root)).filter((f) => f.path === VALUES_SCHEMA);
    assert.equal(files.length, 1);
    assert.equal(readFileSync(join(root, VALUES_SCHEMA), "utf8"), files[0]?.content, "run: npm run manifests");
  });

  it("a stale, extra or missing generated file fails the check", async () => {
    const files = await generateManifests(plugins, root);
    const copy = mkdtempSync(join(tmpdir(), "kubeplug-manifests-"));
    try {
      cpSync(join(root, "charts"), join(copy, "charts"), { recursive: true });
      writeManifests(copy, files, false);
      assert.deepEqual(writeManifests(copy, files, true), [], "freshly written files are up to date");

      writeFileSync(join(copy, CHART_CRD), readFileSync(join(copy, CHART_CRD), "utf8").replace("maximum: 10", "maximum: 11"));
      writeFileSync(join(copy, "charts/kubeplug/crds/leftover.yaml"), "# from a removed kind\n");
      assert.deepEqual(writeManifests(copy, files, true).sort(), ["charts/kubeplug/crds/leftover.yaml", CHART_CRD]);

      rmSync(join(copy, CHART_CRD));
      assert.ok(writeManifests(copy, files, true).includes(CHART_CRD), "a missing file is reported");
    } finally {
      rmSync(copy, { recursive: true, force: true });
    }
  });

  it("the chart's webhooks admit only watchNamespaces when it is set, and every namespace but the release's otherwise", async () => {
    const tools = await ensureTools();
    const selectors = async (set: string[]) => {
      const { stdout } = await run(tools.helm, [
        "template",
        "kp",
        join(root, "charts/kubeplug"),
        "-n",
        "ops",
        "--set",
        "plugins={webapp,tenant}",
        ...set,
      ]);
      return [...stdout.matchAll(/namespaceSelector:\n((?: {4}.*\n)+)/g)].map((m) => m[1] ?? "");
    };
    const all = await selectors([]);
    assert.equal(all.length, 2, "the WebApp's mutating and validating webhooks (Tenant is cluster-scoped)");
    for (const selector of all) {
      assert.match(selector, /operator: NotIn\n\s+values:\n\s+- ops\n/);
      assert.doesNotMatch(selector, /operator: In\n/);
    }
    for (const selector of await selectors(["--set", "watchNamespaces={team-a,team-b}"])) {
      assert.match(selector, /operator: In\n\s+values:\n\s+- team-a\n\s+- team-b\n/);
    }
  });

  it("the chart's webhooks take failurePolicy from webhook.failurePolicy (Fail by default)", async () => {
    const tools = await ensureTools();
    const policies = async (...args: string[]) =>
      (await run(tools.helm, ["template", "kp", join(root, "charts/kubeplug"), ...args])).stdout
        .split(/^---$/m)
        .map((doc) => (load(doc) ?? {}) as { kind?: string; webhooks?: { name: string; failurePolicy?: string }[] })
        .filter((d) => d.kind?.endsWith("WebhookConfiguration"))
        .flatMap((d) => d.webhooks ?? [])
        .map((w) => w.failurePolicy);
    const defaults = await policies();
    assert.ok(defaults.length >= 2, "the WebApp's mutating and validating webhooks");
    assert.deepEqual(new Set(defaults), new Set(["Fail"]));
    assert.deepEqual(new Set(await policies("--set", "webhook.failurePolicy=Ignore")), new Set(["Ignore"]));
  });

  it("the chart keeps admission up through voluntary disruptions: a PodDisruptionBudget and replicas spread across nodes", async () => {
    const tools = await ensureTools();
    const render = async (...args: string[]) =>
      (await run(tools.helm, ["template", "kp", join(root, "charts/kubeplug"), ...args])).stdout
        .split(/^---$/m)
        .map((doc) => (load(doc) ?? {}) as { kind?: string; apiVersion?: string; spec?: Record<string, unknown> });
    const selector = { "app.kubernetes.io/name": "kubeplug", "app.kubernetes.io/instance": "kp" };
    for (const [kube, apiVersion] of [
      ["1.20.2", "policy/v1beta1"],
      ["1.30.0", "policy/v1"],
    ]) {
      const docs = await render("--kube-version", kube as string);
      const pdb = docs.find((d) => d.kind === "PodDisruptionBudget");
      assert.equal(pdb?.apiVersion, apiVersion, `Kubernetes ${kube}`);
      assert.deepEqual(pdb?.spec, { maxUnavailable: 1, selector: { matchLabels: selector } });
      const deployment = docs.find((d) => d.kind === "Deployment") as {
        spec: { replicas: number; template: { spec: Record<string, unknown> } };
      };
      assert.equal(deployment.spec.replicas, 2);
      assert.deepEqual(deployment.spec.template.spec.topologySpreadConstraints, [
        {
          maxSkew: 1,
          topologyKey: "kubernetes.io/hostname",
          whenUnsatisfiable: "ScheduleAnyway",
          labelSelector: { matchLabels: selector },
        },
      ]);
    }
    assert.equal(
      (await render("--set", "replicas=1")).filter((d) => d.kind === "PodDisruptionBudget").length,
      0,
      "none for one replica",
    );
    const zones = [
      {
        maxSkew: 1,
        topologyKey: "topology.kubernetes.io/zone",
        whenUnsatisfiable: "DoNotSchedule",
        labelSelector: { matchLabels: selector },
      },
    ];
    const custom = await render("--set-json", `topologySpreadConstraints=${JSON.stringify(zones)}`);
    const deployment = custom.find((d) => d.kind === "Deployment") as { spec: { template: { spec: Record<string, unknown> } } };
    assert.deepEqual(deployment.spec.template.spec.topologySpreadConstraints, zones, "a value replaces the default spread");
  });

  it("the WebApp CRD has the printer columns, defaults, bounds and descriptions", () => {
    assertWebAppCrd(crdOf(WebAppKind) as unknown as Crd);
  });
});

describe("the chart's WebApp CRD on an API server", () => {
  let cp: ControlPlane;
  let tools: Tools;
  let rest: RestClient;
  const kubectl = async (...args: string[]) =>
    (await run(tools.kubectl, ["--kubeconfig", cp.kubeconfigPath, "--cache-dir", join(cp.dir, "kubectl-cache"), ...args])).stdout;

  before(async () => {
    [cp, tools] = await Promise.all([startControlPlane({ controllerManager: false }), ensureTools()]);
    rest = await RestClient.create(cp.kubeConfig);
    // What `helm install` applies: the checked-in file.
    await kubectl("apply", "-f", join(root, CHART_CRD));
    await waitFor("the CRD to be established", async () => {
      const crd = await rest.request<Crd>("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
      return crd.status?.conditions?.some((c) => c.type === "Established" && c.status === "True");
    });
  });
  after(async () => {
    await rest?.close();
    await cp?.stop();
  });

  it("kubectl explain webapp.spec prints the field descriptions", async () => {
    // The API server publishes a new CRD's OpenAPI a moment after it is established.
    const text = await waitFor("kubectl explain webapp.spec", () => kubectl("explain", "webapp.spec").catch(() => undefined));
    const explained = oneLine(text);
    assert.ok(explained.includes(oneLine(webAppSpec.description ?? "")), explained);
    for (const [field, schema] of Object.entries(webAppSpec.shape)) {
      assert.match(text, new RegExp(`^\\s+${field}\\s+<`, "m"), `${field} is listed`);
      assert.ok(explained.includes(oneLine(schema.description ?? "")), `the description of ${field} is shown:\n${text}`);
    }
  });

  it("serves the same schema as the CRD that `run --install` applies", async () => {
    const served = await rest.request<Crd>("GET", `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${CRD_NAME}`);
    assertWebAppCrd(served);
    const expected = crdOf(WebAppKind) as unknown as Crd;
    assert.deepEqual(served.spec.versions[0]?.schema.openAPIV3Schema, expected.spec.versions[0]?.schema.openAPIV3Schema);
  });
});

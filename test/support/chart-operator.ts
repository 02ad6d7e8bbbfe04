/**
 * An installed chart's operator, run on the host instead of in its Pod: there is no kubelet, so the
 * chart's Deployment never runs. The operator gets exactly what the Pod would: the Deployment's
 * rendered arguments (listeners moved to loopback ports), POD_NAMESPACE, and the chart's
 * ServiceAccount token as its only credential; the chart's webhook configurations are pointed from
 * the in-cluster Service to the host. So a test shows the generated RBAC is enough, and no more.
 */
import assert from "node:assert/strict";
import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { ApiError, isNotFound, type KubeObject, PatchType, RestClient } from "../../core/runtime.ts";
import { waitFor } from "./wait.ts";

/** The environment for children: none of the caller's kubeplug, Kubernetes or Helm settings leak in. */
export function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(
      ([k]) => !k.startsWith("KUBEPLUG_") && !k.startsWith("HELM_") && k !== "POD_NAMESPACE" && k !== "KUBECONFIG",
    ),
  );
  return { ...env, ...extra };
}

/** An object read from the API (not a cache), or undefined when it does not exist. */
export async function readObject<T = KubeObject>(client: RestClient, path: string): Promise<T | undefined> {
  try {
    return await client.request<T>("GET", path);
  } catch (err) {
    if (isNotFound(err)) return undefined;
    throw err;
  }
}

// ---- the ServiceAccount's credentials ------------------------------------------------------------

/** A ServiceAccount's token as a kubeconfig file, and a client with it (close it when done). */
export interface ServiceAccountCredentials {
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  rest: RestClient;
  /** `system:serviceaccount:<namespace>:<name>`, the user the API server sees. */
  user: string;
}

/**
 * Waits for the token Secret the token controller (kube-controller-manager, Kubernetes 1.20) gives
 * the ServiceAccount, and writes a kubeconfig with that token (and nothing else) into `dir`.
 */
export async function serviceAccountKubeconfig(
  rest: RestClient,
  cp: { server: string; caPem: string },
  namespace: string,
  serviceAccountName: string,
  dir: string,
): Promise<ServiceAccountCredentials> {
  const secretName = await waitFor("the ServiceAccount's token Secret", async () => {
    const sa = await readObject<KubeObject & { secrets?: { name: string }[] }>(
      rest,
      `/api/v1/namespaces/${namespace}/serviceaccounts/${serviceAccountName}`,
    );
    return sa?.secrets?.find((s) => s.name.startsWith(`${serviceAccountName}-token-`))?.name;
  });
  const secret = (await readObject<KubeObject & { type: string; data: Record<string, string> }>(
    rest,
    `/api/v1/namespaces/${namespace}/secrets/${secretName}`,
  )) as KubeObject & { type: string; data: Record<string, string> };
  assert.equal(secret.type, "kubernetes.io/service-account-token");
  const token = Buffer.from(secret.data.token as string, "base64").toString("utf8");
  const kubeconfigPath = join(dir, `sa-kubeconfig-${namespace}-${serviceAccountName}`);
  writeFileSync(
    kubeconfigPath,
    JSON.stringify({
      apiVersion: "v1",
      kind: "Config",
      clusters: [
        {
          name: "cp",
          cluster: { server: cp.server, "certificate-authority-data": Buffer.from(cp.caPem).toString("base64") },
        },
      ],
      users: [{ name: serviceAccountName, user: { token } }],
      contexts: [{ name: serviceAccountName, context: { cluster: "cp", user: serviceAccountName, namespace } }],
      "current-context": serviceAccountName,
    }),
    { mode: 0o600 },
  );
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromFile(kubeconfigPath);
  return {
    kubeconfigPath,
    kubeConfig,
    rest: await RestClient.create(kubeConfig),
    user: `system:serviceaccount:${namespace}:${serviceAccountName}`,
  };
}

/** Asserts `client` is refused `method path` with 403, and the refusal names `user`. */
export async function assertForbidden(
  client: RestClient,
  user: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<void> {
  await assert.rejects(client.request(method, path, body === undefined ? {} : { body }), (err: unknown) => {
    assert.ok(err instanceof ApiError, String(err));
    assert.equal(err.code, 403, `${method} ${path}: ${err.message}`);
    assert.ok(err.message.includes(user), `${method} ${path} was refused to ${user}: ${err.message}`);
    return true;
  });
}

// ---- the webhook configurations ----------------------------------------------------------------

interface WebhookConfiguration extends KubeObject {
  webhooks: {
    name: string;
    clientConfig: {
      service?: { name: string; namespace: string; port?: number; path?: string };
      url?: string;
      caBundle?: string;
    };
  }[];
}

/**
 * Points every webhook of the configurations at `configPaths` from the chart's Service (which the
 * API server cannot reach: no Pod runs) to `https://127.0.0.1:<port><the Service's path>`. Each
 * webhook must call `service` and have no caBundle yet (the operator injects it). Resolves with a
 * function that puts the chart's own clientConfig back, so a `helm upgrade` finds what it rendered.
 */
export async function pointWebhooksAtHost(
  rest: RestClient,
  configPaths: readonly string[],
  port: number,
  service: string,
): Promise<() => Promise<void>> {
  const originals = new Map<string, WebhookConfiguration>();
  for (const path of configPaths) {
    const config = (await readObject<WebhookConfiguration>(rest, path)) as WebhookConfiguration;
    assert.ok(config, `${path} exists`);
    originals.set(path, config);
    assert.ok(config.webhooks.length > 0, `${path} has webhooks`);
    const ops = config.webhooks.flatMap((w, i) => {
      assert.equal(w.clientConfig.service?.name, service, `${w.name} calls the chart's Service`);
      assert.equal(w.clientConfig.caBundle, undefined, `${w.name} has no caBundle before the operator runs`);
      return [
        // The index is the webhook's: fail rather than repoint another one if the list changed meanwhile.
        { op: "test", path: `/webhooks/${i}/name`, value: w.name },
        { op: "remove", path: `/webhooks/${i}/clientConfig/service` },
        {
          op: "add",
          path: `/webhooks/${i}/clientConfig/url`,
          value: `https://127.0.0.1:${port}${w.clientConfig.service?.path}`,
        },
      ];
    });
    await rest.request("PATCH", path, { body: ops, contentType: PatchType.json });
  }
  return async () => {
    for (const [path, original] of originals) {
      const live = await readObject<WebhookConfiguration>(rest, path);
      if (!live) continue;
      const ops = live.webhooks.flatMap((w, i) => {
        const service = original.webhooks.find((o) => o.name === w.name)?.clientConfig.service;
        if (!service || !w.clientConfig.url) return [];
        return [
          { op: "remove", path: `/webhooks/${i}/clientConfig/url` },
          { op: "add", path: `/webhooks/${i}/clientConfig/service`, value: service },
        ];
      });
      if (ops.length) await rest.request("PATCH", path, { body: ops, contentType: PatchType.json });
    }
  };
}

/**
 * A check for {@link HostOperator.running}: true once the CA of the operator's webhook Secret (at
 * `secretPath`) is the caBundle of every webhook in `configPaths`.
 */
export function webhookCaInjected(rest: RestClient, secretPath: string, configPaths: readonly string[]): () => Promise<boolean> {
  return async () => {
    const tls = await readObject<KubeObject & { data?: Record<string, string> }>(rest, secretPath);
    const ca = tls?.data?.["ca.crt"];
    if (!ca) return false;
    for (const path of configPaths) {
      const config = await readObject<WebhookConfiguration>(rest, path);
      if (!config?.webhooks.every((w) => w.clientConfig.caBundle === ca)) return false;
    }
    return true;
  };
}

// ---- the Deployment's arguments ----------------------------------------------------------------

/** What of a rendered Deployment's container the operator on the host takes: its args and env. */
export interface DeploymentContainerLike {
  args?: string[];
  env?: { name: string; value?: string; valueFrom?: { fieldRef?: { fieldPath: string } } }[];
}

/** What of a rendered Deployment the operator on the host takes: its first container. */
export interface DeploymentSpecLike {
  spec: { template: { spec: { containers: DeploymentContainerLike[] } } };
}

/** The value of `--flag=value` in `args`. */
export function flag(args: readonly string[], name: string): string | undefined {
  const prefix = `--${name}=`;
  return args.find((a) => a.startsWith(prefix))?.slice(prefix.length);
}

/** The manager container's args, with each of `replace` (flag -> value) swapped; each must be there. */
export function replaceFlags(args: readonly string[], replace: Record<string, string>): string[] {
  for (const name of Object.keys(replace)) assert.ok(flag(args, name) !== undefined, `the Deployment passes --${name}`);
  return args.map((a) => {
    const name = /^--([^=]+)=/.exec(a)?.[1];
    return name && name in replace ? `--${name}=${replace[name]}` : a;
  });
}

/** The operator's process on the host. */
export interface HostOperator {
  child: ChildProcess;
  /** The arguments it was started with. */
  args: string[];
  /** Everything it printed so far (stdout and stderr). */
  output(): string;
  /** The last lines it printed, for failure messages. */
  tail(lines?: number): string;
  /** Resolves when it ends. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Waits for `check`, failing at once (with the operator's output) if the operator exits. */
  running(what: string, check: () => Promise<boolean>, timeoutMs?: number): Promise<void>;
  /** Sends `signal` unless it has ended; resolves when it has. */
  stop(signal?: NodeJS.Signals): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** Options of {@link runOperatorAsDeployment}. */
export interface HostOperatorOptions {
  /** The installed Deployment, as read from the API server. */
  deployment: DeploymentSpecLike;
  /** The release's namespace: POD_NAMESPACE, which the Deployment sets from metadata.namespace. */
  namespace: string;
  /** Flags of the Deployment to give other values (each must be there): the listener addresses. */
  replace: Record<string, string>;
  /** Flags after the Deployment's: the kubeconfig, --webhook-hosts, --plugin ... */
  extraArgs?: string[];
  /** The kubeplug executable. */
  command: string;
  cwd?: string;
  /** The environment (POD_NAMESPACE is set from `namespace`). */
  env: NodeJS.ProcessEnv;
  /** A registry of the caller's children: the operator is in it while it runs. */
  children?: Set<ChildProcess>;
}

/**
 * Starts `command` with exactly the Deployment's arguments (so they cannot drift) but for `replace`,
 * then `extraArgs`. The container must run `kubeplug run` and take POD_NAMESPACE from its namespace.
 */
export function runOperatorAsDeployment(options: HostOperatorOptions): HostOperator {
  const container = options.deployment.spec.template.spec.containers[0];
  assert.ok(container, "the Deployment has a container");
  const env = container.env ?? [];
  assert.equal(env.find((e) => e.name === "POD_NAMESPACE")?.valueFrom?.fieldRef?.fieldPath, "metadata.namespace");
  const rendered = container.args ?? [];
  assert.equal(rendered[0], "run", "the container runs `kubeplug run`");
  const args = [...replaceFlags(rendered, options.replace), ...(options.extraArgs ?? [])];
  return startOperator({
    command: options.command,
    args,
    env: { ...options.env, POD_NAMESPACE: options.namespace },
    ...(options.cwd ? { cwd: options.cwd } : {}),
    ...(options.children ? { children: options.children } : {}),
  });
}

/** Starts an operator process on the host (`command args`), its output kept for failure messages. */
export function startOperator(options: {
  command: string;
  args: string[];
  env: NodeJS.ProcessEnv;
  cwd?: string;
  children?: Set<ChildProcess>;
}): HostOperator {
  const { args } = options;
  const child = spawn(options.command, args, {
    env: options.env,
    stdio: ["ignore", "pipe", "pipe"],
    ...(options.cwd ? { cwd: options.cwd } : {}),
  });
  options.children?.add(child);
  let output = "";
  child.stdout?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  child.stderr?.setEncoding("utf8").on("data", (d: string) => {
    output += d;
  });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on("exit", (code, signal) => {
      options.children?.delete(child);
      resolve({ code, signal });
    }),
  );
  const tail = (lines = 30) => output.trimEnd().split("\n").slice(-lines).join("\n");
  const ended = () => child.exitCode !== null || child.signalCode !== null;
  return {
    child,
    args,
    output: () => output,
    tail,
    exited,
    async running(what, check, timeoutMs = 60_000) {
      const result = await waitFor(what, async () => (ended() ? "exited" : (await check()) && "done"), { timeoutMs }).catch(
        (err: Error) => {
          throw new Error(`${err.message}\noperator output:\n${tail()}`);
        },
      );
      assert.equal(
        result,
        "done",
        `the operator exited (${child.exitCode ?? child.signalCode}) while waiting for ${what}:\n${tail()}`,
      );
    },
    async stop(signal = "SIGKILL") {
      if (!ended()) child.kill(signal);
      return exited;
    },
  };
}

/**
 * The `kubeplug` commands: run, manifests, create, demo, version. Each command loads its own modules
 * when it runs, so `run` does not load the generators and the scaffolder, nor they the manager.
 */
import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { managerFlagsHelp, PluginLoadError } from "../core/runtime.ts";
import { plugins } from "./builtin-plugins.ts";
import { packageRoot } from "./paths.ts";

const root = packageRoot;
const version = (JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { version: string }).version;

const HELP = `kubeplug ${version}: a Kubernetes operator platform; one manager hosts many operators as plugins.

Usage: kubeplug <command> [flags]

Commands:
  run        Run the manager with the plugins (${plugins.map((p) => p.name).join(", ")})
  manifests  Generate the chart's CRDs (and RBAC, webhooks) from the plugins  [--check]
  create     Scaffold a plugin: create plugin <name> --group G --version V --kind K [--cluster-scoped]
  demo       Start a local control plane (or use --kubeconfig), run the WebApp operator and a sample WebApp
  version    Print the version
  help       Show this help; "kubeplug <command> --help" shows a command's flags

Examples:
  kubeplug demo                                      # everything local, Ctrl-C stops it all
  kubeplug run --kubeconfig ~/.kube/config --install # run on your cluster, applying the CRDs first
  kubeplug run --leader-elect --namespace team-a,team-b --plugins webapp
  kubeplug manifests --check                         # fail when generated files are stale
  kubeplug create plugin backup --group backup.example.com --version v1 --kind BackupPolicy
`;

const RUN_HELP = `Usage: kubeplug run [flags]

Runs the manager until SIGTERM/SIGINT. Every flag can also be set as KUBEPLUG_<FLAG> (e.g. KUBEPLUG_LEADER_ELECT=true).

Flags:
  --install                                   apply the plugins' CRDs first (local development)
${managerFlagsHelp()}

Examples:
  kubeplug run --kubeconfig .cluster/kubeconfig --install
  kubeplug run --leader-elect --metrics-bind-address :9090 --log-level debug
`;

const MANIFESTS_HELP = `Usage: kubeplug manifests [--check]
       kubeplug manifests --plugin SPECIFIER [--plugin ...] --out DIR [--check]

Without --plugin: regenerates kubeplug's chart (CRDs, RBAC, webhook configurations, values schema)
from the built-in plugins. With --plugin: writes a Helm chart at DIR: kubeplug's chart with those
plugins' CRDs, least-privilege RBAC and webhook configurations generated in, the plugins enabled by
default (helm install NAME DIR --set image.repository=<the plugin's image>). --check exits 1 when
files are stale.
`;

/** Runs the command `argv` names; returns the exit code. */
export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const wantsHelp = rest.includes("--help") || rest.includes("-h");
  switch (command) {
    case undefined:
    case "help":
    case "--help":
    case "-h":
      process.stdout.write(HELP);
      return 0;
    case "version":
    case "--version":
      process.stdout.write(`kubeplug ${version} (node ${process.versions.node})\n`);
      return 0;
    case "run": {
      if (wantsHelp) {
        process.stdout.write(RUN_HELP);
        return 0;
      }
      const [{ runManager }, { installCrds, installWebhookConfigurations }] = await Promise.all([
        import("./run.ts"),
        import("./install.ts"),
      ]);
      const install = rest.includes("--install");
      // Running on the host: the API server calls the webhooks at 127.0.0.1, so the certificate covers it.
      const args = install ? [...rest.filter((a) => a !== "--install"), "--webhook-hosts", "127.0.0.1,localhost"] : rest;
      return runManager(args, {
        plugins,
        beforeStart: install
          ? async (manager, webhooks, signal, running) => {
              const names = await installCrds(manager.client.rest, running);
              manager.logger.info({ crds: names }, "installed CRDs");
              const port = manager.config.webhookBindAddress?.port;
              // Applied once the server serves, so the API server never calls a webhook that is not there.
              void installWebhookConfigurations(manager.client.rest, webhooks, {
                url: `https://127.0.0.1:${port}`,
                name: manager.config.webhookConfigurationName,
                // Exclude the operator's namespace only when it really runs in one; on a host the default
                // namespace would otherwise lose its webhooks (Kubernetes >= 1.21 labels namespaces).
                ownNamespace: process.env.POD_NAMESPACE ?? "",
                // With --namespace, only the watched namespaces' objects reach this manager's webhooks.
                watchNamespaces: manager.config.namespaces,
                signal,
              })
                .then((configs) => configs.length && manager.logger.info({ configs }, "installed webhook configurations"))
                .catch((err: unknown) =>
                  manager.logger.error({ err: String(err) }, "could not install the webhook configurations"),
                );
            }
          : undefined,
      });
    }
    case "manifests": {
      if (wantsHelp) {
        process.stdout.write(MANIFESTS_HELP);
        return 0;
      }
      const { generateManifests, generatePluginChart, writeManifests } = await import("./manifests.ts");
      let values: { check?: boolean; plugin?: string[]; out?: string };
      try {
        ({ values } = parseArgs({
          args: rest,
          options: { check: { type: "boolean" }, plugin: { type: "string", multiple: true }, out: { type: "string" } },
          strict: true,
        }));
      } catch (err) {
        process.stderr.write(`kubeplug manifests: ${(err as Error).message}\n\n${MANIFESTS_HELP}`);
        return 2;
      }
      if (values.plugin?.length) {
        if (!values.out) {
          process.stderr.write(
            "kubeplug manifests: --plugin needs --out DIR (kubeplug's own chart is generated from its built-in plugins only)\n",
          );
          return 2;
        }
        try {
          const { loadPlugins } = await import("./load-plugins.ts");
          const { loaded } = await loadPlugins(values.plugin, plugins);
          const out = resolve(values.out);
          const files = await generatePluginChart(loaded, root);
          const changed = writeManifests(out, files, values.check ?? false);
          process.stdout.write(
            changed.length
              ? `${values.check ? "stale" : "wrote"} in ${out}: ${changed.join(", ")}\n`
              : "manifests are up to date\n",
          );
          return values.check && changed.length ? 1 : 0;
        } catch (err) {
          if (!(err instanceof PluginLoadError)) throw err;
          process.stderr.write(`kubeplug manifests: ${err.message}\n`);
          return 1;
        }
      }
      const check = values.check ?? false;
      const changed = writeManifests(root, await generateManifests(plugins, root), check);
      if (check && changed.length > 0) {
        process.stderr.write(`generated files are stale: ${changed.join(", ")}\nrun: npm run manifests\n`);
        return 1;
      }
      process.stdout.write(
        changed.length ? `${check ? "stale" : "wrote"}: ${changed.join(", ")}\n` : "manifests are up to date\n",
      );
      return 0;
    }
    case "create": {
      const { CREATE_HELP, createPlugin, ScaffoldError } = await import("./scaffold.ts");
      if (wantsHelp) {
        process.stdout.write(CREATE_HELP);
        return 0;
      }
      try {
        await createPlugin(rest, root, plugins, (m) => process.stdout.write(`${m}\n`));
        return 0;
      } catch (err) {
        if (err instanceof ScaffoldError) {
          process.stderr.write(`kubeplug create: ${err.message}\n`);
          return 2;
        }
        throw err;
      }
    }
    case "demo": {
      const { runDemo } = await import("./demo.ts");
      return runDemo(rest);
    }
    default:
      process.stderr.write(`kubeplug: unknown command "${command}"; commands: run, manifests, create, demo, version, help\n`);
      return 2;
  }
}

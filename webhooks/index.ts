/** The admission webhook server shared by all plugins, and what plugins use to register handlers. */
import { type Manager, ownNamespace } from "../core/runtime.ts";
import { FileCertWatcher } from "./certs/files.ts";
import { SelfManagedCerts } from "./certs/self-managed.ts";
import type { CertSource } from "./certs/source.ts";
import { WebhookRegistry } from "./registry.ts";
import { WebhookServer } from "./server.ts";

export { generateTls, type TlsBundle } from "./certs/generate.ts";
export {
  type ConfigurationOptions,
  NAMESPACE_NAME_LABEL,
  type WebhookTarget,
  webhookConfigurations,
} from "./configuration.ts";
export { type WebhookEntry, WebhookRegistry, webhookPath } from "./registry.ts";
export { jsonPatch } from "./review.ts";
export { WebhookServer } from "./server.ts";

/** What {@link addWebhooks} set up. */
export interface Webhooks {
  registry: WebhookRegistry;
  /** Absent when `--webhook-bind-address 0` disabled the server. */
  server?: WebhookServer;
  certs?: CertSource;
}

/** The DNS names of the webhook Service in `namespace`. */
export function serviceHosts(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/**
 * Adds the webhook registry (where plugins' `ctx.webhooks(kind)` declarations go) and, unless
 * disabled, the HTTPS server and its certificate source to a manager. Call before the plugins'
 * setup (ContainerOptions.beforeSetup).
 */
export function addWebhooks(manager: Manager): Webhooks {
  const registry = new WebhookRegistry();
  manager.setWebhooks(registry);
  const config = manager.config;
  if (!config.webhookBindAddress) return { registry };
  const namespace = config.leaderElectionNamespace ?? ownNamespace();
  let certs: CertSource;
  if (config.webhookCertDir) {
    const files = new FileCertWatcher(config.webhookCertDir, manager.logger);
    manager.add(files);
    certs = files.holder;
  } else {
    const selfManaged = new SelfManagedCerts({
      rest: manager.client.rest,
      namespace,
      secretName: config.webhookSecretName,
      hosts: [...serviceHosts(config.webhookServiceName, namespace), ...config.webhookHosts],
      validityMs: config.webhookCertValidityMs,
      renewBeforeMs: config.webhookCertRenewBeforeMs,
      caValidityMs: config.webhookCaValidityMs,
      configurations: {
        mutating: `${config.webhookConfigurationName}-mutating`,
        validating: `${config.webhookConfigurationName}-validating`,
      },
      logger: manager.logger,
    });
    manager.add(selfManaged.watcher);
    manager.add(selfManaged.rotator);
    certs = selfManaged.holder;
  }
  const server = new WebhookServer({
    registry,
    certs,
    address: config.webhookBindAddress,
    client: manager.client,
    metrics: manager.metrics,
    logger: manager.logger,
    thread: { config, rest: manager.client.rest, plugins: () => manager.plugins },
  });
  manager.add(server);
  manager.health.addReadyCheck("webhook", () => {
    if (!server.serving) throw new Error("the webhook server is not serving yet (waiting for its certificate)");
  });
  return { registry, server, certs };
}
export { WEBHOOK_CLUSTER_RULES } from "./rbac.ts";

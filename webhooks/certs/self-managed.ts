/**
 * Self-managed webhook certificates (the default): no cert-manager needed.
 *
 * Guarantees:
 * - The CA and serving certificate live in one Secret in the operator's namespace; every replica
 *   serves the certificate from that Secret and follows it when it changes (no restart: the server
 *   swaps its TLS context, open connections are not dropped).
 * - Only the leader writes: it creates the Secret when missing or invalid (wrong SANs, broken chain)
 *   and renews the serving certificate `renewBefore` ahead of expiry, keeping the CA so the
 *   caBundle stays valid; it keeps the caBundle of the webhook configurations equal to the CA, also
 *   when something else (a `helm upgrade`) resets it.
 * - Reads come from watches on exactly that Secret and those configurations (field selectors): no
 *   polling, no other Secret is read or cached.
 */
import { X509Certificate } from "node:crypto";
import {
  collectionPath,
  Informer,
  isAlreadyExists,
  isConflict,
  type Kind,
  type Logger,
  MutatingWebhookConfigurationKind,
  objectPath,
  PatchType,
  type RestClient,
  type Runnable,
  type Secret,
  SecretKind,
  ValidatingWebhookConfigurationKind,
  type WebhookConfiguration,
} from "../../core/runtime.ts";
import { generateTls } from "./generate.ts";
import { CertHolder, type ServingCert } from "./source.ts";

/** Settings of the self-managed certificates. */
export interface SelfManagedOptions {
  rest: RestClient;
  namespace: string;
  secretName: string;
  /** DNS names and IPs the serving certificate covers. */
  hosts: readonly string[];
  validityMs: number;
  renewBeforeMs: number;
  /** Names of the Mutating/ValidatingWebhookConfigurations whose caBundle to keep current. */
  configurations: { mutating?: string; validating?: string };
  logger: Logger;
}

const b64 = (s: string) => Buffer.from(s).toString("base64");
const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

/** The certificate in a Secret and when it must be renewed, or why it cannot be used. */
function inspect(secret: Secret | undefined, hosts: readonly string[], renewBeforeMs: number, now: number) {
  if (!secret?.data) return { problem: "the Secret does not exist yet" } as const;
  const ca = unb64(secret.data["ca.crt"]);
  const cert = unb64(secret.data["tls.crt"]);
  const key = unb64(secret.data["tls.key"]);
  const caKey = unb64(secret.data["ca.key"]);
  try {
    const x = new X509Certificate(cert);
    const caX = new X509Certificate(ca);
    if (!x.verify(caX.publicKey)) return { problem: "the serving certificate is not signed by the CA" } as const;
    const sans = (x.subjectAltName ?? "").split(", ").map((s) => s.replace(/^(DNS|IP Address):/, ""));
    const missing = hosts.filter((h) => !sans.includes(h));
    const serving: ServingCert = { cert, key, ca };
    const caUsable = caKey && Date.parse(caX.validTo) - now > 2 * renewBeforeMs ? { caCert: ca, caKey } : undefined;
    if (missing.length > 0)
      return { problem: `the certificate does not cover ${missing.join(", ")}`, caUsable, serving } as const;
    const renewAt = Date.parse(x.validTo) - renewBeforeMs;
    if (now >= renewAt) return { problem: `the certificate expires at ${x.validTo}`, caUsable, serving } as const;
    return { serving, renewAt } as const;
  } catch (err) {
    return { problem: `the Secret holds no valid certificate (${(err as Error).message})` } as const;
  }
}

/** See the module comment. Add `watcher` (every replica) and `rotator` (leader) to the manager. */
export class SelfManagedCerts {
  readonly holder = new CertHolder();
  readonly watcher: Runnable;
  readonly rotator: Runnable;
  private readonly o: SelfManagedOptions;
  private readonly log: Logger;
  private readonly secrets: Informer<Secret>;
  private readonly configInformers: Informer<WebhookConfiguration>[];
  private kick: (() => void) | undefined;

  constructor(options: SelfManagedOptions) {
    this.o = options;
    this.log = options.logger.child({ component: "webhook-certs", secret: `${options.namespace}/${options.secretName}` });
    this.secrets = new Informer(options.rest, SecretKind, {
      namespace: options.namespace,
      fieldSelector: `metadata.name=${options.secretName}`,
      logger: options.logger,
    });
    const load = (secret: Secret) => {
      const result = inspect(secret, this.o.hosts, 0, Date.now());
      if ("serving" in result && result.serving) this.holder.set(result.serving);
      this.kick?.();
    };
    this.secrets.addHandler({ onAdd: load, onUpdate: (_old, s) => load(s), onDelete: () => this.kick?.() });
    this.configInformers = (
      [
        [MutatingWebhookConfigurationKind, options.configurations.mutating],
        [ValidatingWebhookConfigurationKind, options.configurations.validating],
      ] as const
    )
      .filter((pair): pair is readonly [Kind<WebhookConfiguration, false>, string] => !!pair[1])
      .map(([kind, name]) => {
        const informer = new Informer(options.rest, kind, { fieldSelector: `metadata.name=${name}`, logger: options.logger });
        informer.addHandler({ onAdd: () => this.kick?.(), onUpdate: () => this.kick?.() });
        return informer;
      });
    this.watcher = { name: "webhook-cert-watcher", needsLeaderElection: false, start: (signal) => this.secrets.start(signal) };
    this.rotator = { name: "webhook-cert-rotator", needsLeaderElection: true, start: (signal) => this.rotate(signal) };
  }

  private async rotate(signal: AbortSignal): Promise<void> {
    const runs = this.configInformers.map((i) => i.start(signal));
    await this.secrets.waitForSync(signal);
    await Promise.all(this.configInformers.map((i) => i.waitForSync(signal)));
    let backoff = 500;
    while (!signal.aborted) {
      let wakeAt = Number.POSITIVE_INFINITY;
      try {
        wakeAt = await this.ensureSecret();
        await this.injectCaBundle();
        backoff = 500;
      } catch (err) {
        this.log.warn({ err: String(err) }, "could not update the webhook certificate; retrying");
        wakeAt = Date.now() + backoff;
        backoff = Math.min(backoff * 2, 30_000);
      }
      await new Promise<void>((resolve) => {
        const delay = Math.max(0, Math.min(wakeAt - Date.now(), 2 ** 31 - 1));
        const timer = setTimeout(done, delay);
        this.kick = done;
        signal.addEventListener("abort", done, { once: true });
        function done() {
          clearTimeout(timer);
          signal.removeEventListener("abort", done);
          resolve();
        }
      });
    }
    this.kick = undefined;
    await Promise.all(runs);
  }

  /** Makes the Secret hold a valid certificate; returns when it must next be renewed. */
  private async ensureSecret(): Promise<number> {
    const { namespace, secretName, hosts, renewBeforeMs, validityMs } = this.o;
    const secret = this.secrets.store.get(`${namespace}/${secretName}`);
    const now = Date.now();
    const state = inspect(secret, hosts, renewBeforeMs, now);
    if (!state.problem) return state.renewAt;
    this.log.info({ reason: state.problem }, "issuing a new serving certificate");
    const tls = generateTls({
      hosts,
      certValidityMs: validityMs,
      ...("caUsable" in state && state.caUsable ? state.caUsable : {}),
    });
    const data = { "ca.crt": b64(tls.ca), "ca.key": b64(tls.caKey), "tls.crt": b64(tls.cert), "tls.key": b64(tls.key) };
    try {
      if (!secret) {
        await this.o.rest.request("POST", collectionPath(SecretKind, namespace), {
          body: {
            apiVersion: "v1",
            kind: "Secret",
            type: "kubernetes.io/tls",
            metadata: { name: secretName, namespace, labels: { "app.kubernetes.io/managed-by": "kubeplug" } },
            data,
          },
        });
      } else {
        await this.o.rest.request("PUT", objectPath(SecretKind, secretName, namespace), {
          body: { ...structuredClone(secret), data },
        });
      }
    } catch (err) {
      // Someone else wrote it first: the watch brings their certificate and wakes us.
      if (isAlreadyExists(err) || isConflict(err)) return Date.now() + 1_000;
      throw err;
    }
    // The watch event of our own write wakes the loop; until then, do not renew again.
    return Date.now() + 5_000;
  }

  /** Keeps every webhook's caBundle in the configurations equal to the Secret's CA. */
  private async injectCaBundle(): Promise<void> {
    const ca = this.holder.current()?.ca;
    if (!ca) return;
    const bundle = b64(ca);
    for (const informer of this.configInformers) {
      for (const config of informer.store.list()) {
        const ops = (config.webhooks ?? []).flatMap((w, i) =>
          w.clientConfig?.caBundle === bundle
            ? []
            : [
                // The test keeps a reordered list from getting the bundle on the wrong webhook.
                { op: "test", path: `/webhooks/${i}/name`, value: w.name },
                { op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: bundle },
              ],
        );
        if (ops.length === 0) continue;
        const kind = informer.kind;
        await this.o.rest.request("PATCH", objectPath(kind, config.metadata.name as string), {
          body: ops,
          contentType: PatchType.json,
          query: { fieldManager: "kubeplug" },
        });
        this.log.info(
          { configuration: `${kind.kind}/${config.metadata.name}`, webhooks: ops.length / 2 },
          "injected the CA bundle",
        );
      }
    }
  }
}

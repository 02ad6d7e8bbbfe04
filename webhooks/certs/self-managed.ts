/**
 * Self-managed webhook certificates (the default): no cert-manager needed.
 *
 * Guarantees:
 * - The CA bundle, the signing CA's key and the serving certificate live in one Secret in the
 *   operator's namespace (`ca.crt` may hold several CAs, `ca.key` is the newest CA's key); every
 *   replica serves the certificate from that Secret and follows it when it changes (no restart: the
 *   server swaps its TLS context, open connections are not dropped).
 * - Only the leader writes: it creates the Secret when missing or invalid (broken chain, no CA left),
 *   renews the serving certificate `renewBefore` ahead of expiry from the same CA, and keeps the
 *   caBundle of the webhook configurations equal to `ca.crt`, also when something else (a
 *   `helm upgrade`) resets it.
 * - The CA is rotated with an overlap, so no admission fails on its account: `2 x renewBefore` ahead
 *   of the CA's expiry (or when its key is missing) (1) a new CA is added to `ca.crt`, and the
 *   caBundles follow (old + new); (2) only once every webhook of the configurations carries the new
 *   CA, as the leader's watch sees them, and {@link CA_SETTLE_MS} more have passed (other API
 *   servers' watches), the serving certificate is replaced by one the new CA signs; (3) the old CA
 *   stays in the bundle until it expires: a serving certificate never outlives its CA, so nothing it
 *   signed is valid by then, and a replica or API server that is late to follow never meets a
 *   certificate it does not trust. An expired CA is dropped from the bundle.
 * - Reads come from watches on exactly that Secret and those configurations (field selectors): no
 *   polling, no other Secret is read or cached.
 *
 * Caveats: a Secret replaced from outside with a CA unrelated to the caBundles (or deleted) is
 * served at once; nothing can overlap with a CA the operator never saw.
 */
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
import { generateCa, generateTls, issueServingCert } from "./generate.ts";
import { type BundledCa, bundleHolds, nextStep, parseSecret } from "./rotation.ts";
import { CertHolder } from "./source.ts";

/** Settings of the self-managed certificates. */
export interface SelfManagedOptions {
  rest: RestClient;
  namespace: string;
  secretName: string;
  /** DNS names and IPs the serving certificate covers. */
  hosts: readonly string[];
  validityMs: number;
  renewBeforeMs: number;
  /** Lifetime of a CA; default 10 years. Must exceed `2 x renewBeforeMs` (when its rotation starts). */
  caValidityMs?: number;
  /** Names of the Mutating/ValidatingWebhookConfigurations whose caBundle to keep current. */
  configurations: { mutating?: string; validating?: string };
  logger: Logger;
}

/**
 * How long every webhook must have carried a new CA (as the leader's watch sees it) before the
 * serving certificate switches to it: other API servers apply configuration changes from their own
 * watches, a moment later.
 */
export const CA_SETTLE_MS = 5_000;

const b64 = (s: string) => Buffer.from(s).toString("base64");
const pems = (cas: readonly BundledCa[]) => cas.map((ca) => ca.pem).join("");

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
  /** Since when every webhook has carried the CA with this fingerprint (leader only). */
  private carried: { fingerprint: string; since: number } | undefined;

  constructor(options: SelfManagedOptions) {
    this.o = options;
    this.log = options.logger.child({ component: "webhook-certs", secret: `${options.namespace}/${options.secretName}` });
    this.secrets = new Informer(options.rest, SecretKind, {
      namespace: options.namespace,
      fieldSelector: `metadata.name=${options.secretName}`,
      logger: options.logger,
    });
    const load = (secret: Secret) => {
      const parsed = parseSecret(secret);
      if (typeof parsed !== "string") this.holder.set(parsed.serving);
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

  /** True when every webhook of the watched configurations carries `ca` in its caBundle. */
  private bundlesHold(ca: BundledCa): boolean {
    return this.configInformers.every((informer) =>
      informer.store.list().every((config) => (config.webhooks ?? []).every((w) => bundleHolds(w.clientConfig?.caBundle, ca))),
    );
  }

  /** Takes the Secret one step towards a valid, current certificate; returns when to look again. */
  private async ensureSecret(): Promise<number> {
    const { namespace, secretName, hosts, renewBeforeMs, validityMs, caValidityMs } = this.o;
    const secret = this.secrets.store.get(`${namespace}/${secretName}`);
    const now = Date.now();
    const next = nextStep(parseSecret(secret), { hosts, renewBeforeMs, now });
    let data: Record<string, string>;
    switch (next.step) {
      case "none":
        return next.wakeAt;
      case "issue": {
        this.log.info({ reason: next.reason }, "issuing a new CA and serving certificate");
        const tls = generateTls({ hosts, certValidityMs: validityMs, caValidityMs });
        data = { "ca.crt": b64(tls.ca), "ca.key": b64(tls.caKey), "tls.crt": b64(tls.cert), "tls.key": b64(tls.key) };
        break;
      }
      case "add-ca": {
        this.log.info(
          { reason: next.reason },
          "adding a new CA to the CA bundle (the serving certificate follows once every webhook trusts it)",
        );
        const ca = generateCa({ validityMs: caValidityMs });
        data = { ...(secret?.data ?? {}), "ca.crt": b64(pems(next.keep) + ca.cert), "ca.key": b64(ca.key) };
        break;
      }
      case "serve": {
        if (next.waitForBundles) {
          const fingerprint = next.ca.x509.fingerprint256;
          if (!this.bundlesHold(next.ca)) {
            this.carried = undefined;
            // The configurations' watch wakes the loop when the caBundles change; look again anyway.
            return now + 10_000;
          }
          if (this.carried?.fingerprint !== fingerprint) this.carried = { fingerprint, since: now };
          if (now < this.carried.since + CA_SETTLE_MS) return this.carried.since + CA_SETTLE_MS;
        }
        this.log.info({ reason: next.reason }, "issuing a new serving certificate");
        const tls = issueServingCert({ hosts, ca: { cert: next.ca.pem, key: next.caKey }, validityMs });
        data = { ...(secret?.data ?? {}), "ca.crt": b64(pems(next.keep)), "tls.crt": b64(tls.cert), "tls.key": b64(tls.key) };
        break;
      }
      case "prune":
        this.log.info({ reason: next.reason }, "dropping expired CAs from the CA bundle");
        data = { ...(secret?.data ?? {}), "ca.crt": b64(pems(next.keep)) };
        break;
    }
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
    // The watch event of our own write wakes the loop; until then, do not write again.
    return Date.now() + 5_000;
  }

  /** Keeps every webhook's caBundle in the configurations equal to the Secret's `ca.crt` (the CA bundle). */
  private async injectCaBundle(): Promise<void> {
    const { namespace, secretName } = this.o;
    const secret = this.secrets.store.get(`${namespace}/${secretName}`);
    const bundle = secret?.data?.["ca.crt"];
    // Never a bundle that does not verify the served certificate (a Secret about to be replaced).
    if (!bundle || typeof parseSecret(secret) === "string") return;
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

/**
 * What the self-managed certificate Secret needs next: a pure function of the Secret, the time and
 * which CAs the webhook configurations carry, so every step of a rotation can be tested without a
 * cluster. self-managed.ts performs the steps; its module comment states the guarantees.
 */
import { createPrivateKey, X509Certificate } from "node:crypto";
import type { Secret } from "../../core/runtime.ts";
import type { ServingCert } from "./source.ts";

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The PEM certificates of a bundle, each ending with a newline. */
export const splitPem = (bundle: string): string[] => [...bundle.matchAll(PEM_CERT)].map((m) => `${m[0]}\n`);

const unb64 = (s: string | undefined) => (s ? Buffer.from(s, "base64").toString("utf8") : "");

/** A CA of the bundle. */
export interface BundledCa {
  pem: string;
  x509: X509Certificate;
  notAfter: number;
}

/** A Secret whose serving certificate is signed by a CA of its bundle. */
export interface ParsedSecret {
  /** What replicas serve; `ca` is the whole bundle. */
  serving: ServingCert;
  servingX509: X509Certificate;
  cas: BundledCa[];
  /** The CA that signed the serving certificate. */
  signer: BundledCa;
  /** PEM of `ca.key`, when present. */
  caKey: string | undefined;
}

/** Reads the Secret; a string says why it cannot be served. */
export function parseSecret(secret: Secret | undefined): ParsedSecret | string {
  if (!secret?.data) return "the Secret does not exist yet";
  const bundle = unb64(secret.data["ca.crt"]);
  const cert = unb64(secret.data["tls.crt"]);
  const key = unb64(secret.data["tls.key"]);
  try {
    const servingX509 = new X509Certificate(cert);
    const cas = splitPem(bundle).map((pem) => {
      const x509 = new X509Certificate(pem);
      return { pem, x509, notAfter: Date.parse(x509.validTo) };
    });
    if (cas.length === 0) return "ca.crt holds no CA certificate";
    const signer = cas.find((ca) => servingX509.checkIssued(ca.x509) && servingX509.verify(ca.x509.publicKey));
    if (!signer) return "the serving certificate is not signed by a CA in ca.crt";
    if (!key.includes("PRIVATE KEY")) return "tls.key holds no private key";
    const caKey = unb64(secret.data["ca.key"]) || undefined;
    return { serving: { cert, key, ca: bundle }, servingX509, cas, signer, caKey };
  } catch (err) {
    return `the Secret holds no valid certificate (${(err as Error).message})`;
  }
}

/** True when `key` (PEM) is the private key of `ca`. */
function holdsKey(ca: BundledCa, key: string | undefined): boolean {
  if (!key) return false;
  try {
    return ca.x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    return false;
  }
}

/** What to do next with the Secret. */
export type RotationStep =
  /** Nothing usable: a new CA and serving certificate replace everything. */
  | { step: "issue"; reason: string }
  /** Rotation (1): a new CA joins the bundle (live CAs kept); `tls.*` unchanged. */
  | { step: "add-ca"; reason: string; keep: BundledCa[] }
  /** Rotation (2) once `ready`, or a renewal from the same CA: a serving certificate from `ca`. */
  | { step: "serve"; reason: string; ca: BundledCa; caKey: string; keep: BundledCa[]; waitForBundles: boolean }
  /** Rotation (3): expired CAs leave the bundle. */
  | { step: "prune"; reason: string; keep: BundledCa[] }
  /** Nothing to do until `wakeAt` (epoch ms). */
  | { step: "none"; wakeAt: number };

/** Timings of {@link nextStep}. */
export interface RotationPolicy {
  hosts: readonly string[];
  /** Serving certificates are renewed this long before they expire; the CA twice as long before. */
  renewBeforeMs: number;
  now: number;
}

/**
 * The next step for `parsed` (see the module comment of self-managed.ts). A new CA is started when
 * the newest one has less than `2 x renewBeforeMs` left, so its first serving certificate (renewed
 * `renewBeforeMs` ahead) is never cut short by the CA before the switch.
 */
export function nextStep(parsed: ParsedSecret | string, policy: RotationPolicy): RotationStep {
  if (typeof parsed === "string") return { step: "issue", reason: parsed };
  const { hosts, renewBeforeMs, now } = policy;
  const live = parsed.cas.filter((ca) => ca.notAfter > now);
  const newest = live.reduce<BundledCa | undefined>((a, b) => (a && a.notAfter >= b.notAfter ? a : b), undefined);
  if (!newest) return { step: "issue", reason: "every CA in ca.crt has expired" };
  const caRenewAt = newest.notAfter - 2 * renewBeforeMs;
  if (!holdsKey(newest, parsed.caKey)) {
    return { step: "add-ca", reason: "ca.key is missing or is not the newest CA's key", keep: live };
  }
  if (now >= caRenewAt) return { step: "add-ca", reason: `the CA expires at ${newest.x509.validTo}`, keep: live };
  const caKey = parsed.caKey as string;
  const servingEnd = Date.parse(parsed.servingX509.validTo);
  if (parsed.signer !== newest) {
    // A serving certificate that is already invalid gains nothing from waiting.
    const broken = servingEnd <= now;
    return {
      step: "serve",
      reason: "the serving certificate is signed by the previous CA",
      ca: newest,
      caKey,
      keep: live,
      waitForBundles: !broken,
    };
  }
  const sans = (parsed.servingX509.subjectAltName ?? "").split(", ").map((s) => s.replace(/^(DNS|IP Address):/, ""));
  const missing = hosts.filter((h) => !sans.includes(h));
  if (missing.length > 0) {
    const reason = `the certificate does not cover ${missing.join(", ")}`;
    return { step: "serve", reason, ca: newest, caKey, keep: live, waitForBundles: false };
  }
  const renewAt = servingEnd - renewBeforeMs;
  if (now >= renewAt) {
    const reason = `the certificate expires at ${parsed.servingX509.validTo}`;
    return { step: "serve", reason, ca: newest, caKey, keep: live, waitForBundles: false };
  }
  if (live.length < parsed.cas.length) return { step: "prune", reason: "a CA in ca.crt has expired", keep: live };
  const oldest = Math.min(...live.filter((ca) => ca !== newest).map((ca) => ca.notAfter));
  return { step: "none", wakeAt: Math.min(renewAt, caRenewAt, oldest) };
}

/** True when the base64 `caBundle` of a webhook holds `ca`. */
export function bundleHolds(caBundle: string | undefined, ca: BundledCa): boolean {
  return splitPem(unb64(caBundle)).some((pem) => pem.trim() === ca.pem.trim());
}

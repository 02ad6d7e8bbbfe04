/**
 * A CA and a serving certificate for the webhook server, made with node-forge (no openssl binary,
 * no cert-manager needed). RSA 2048, SHA-256.
 */
import forge from "node-forge";

/** PEM-encoded TLS material; `ca` verifies `cert`. */
export interface TlsBundle {
  ca: string;
  cert: string;
  key: string;
}

/** Lifetimes; defaults: CA 10 years, serving certificate 1 year. */
export interface CertOptions {
  /** DNS names and IP addresses the serving certificate must cover. */
  hosts: readonly string[];
  caValidityMs?: number;
  certValidityMs?: number;
  /** Reuse this CA (renewing only the serving certificate keeps caBundle stable). */
  caCert?: string;
  caKey?: string;
  now?: Date;
}

const YEAR = 365 * 24 * 3600 * 1000;
const IP = /^\d{1,3}(\.\d{1,3}){3}$|:/;

function serial(): string {
  // Positive, 16 random bytes (RFC 5280 allows up to 20).
  return `01${forge.util.bytesToHex(forge.random.getBytesSync(15))}`;
}

/** A CA certificate and its private key (PEM). */
export interface CaPair {
  cert: string;
  key: string;
}

/** Creates a self-signed CA valid for `validityMs` (default 10 years) from `now`. */
export function generateCa(options: { validityMs?: number; now?: Date } = {}): CaPair {
  const now = options.now ?? new Date();
  const pki = forge.pki;
  const keys = pki.rsa.generateKeyPair(2048);
  const caCert = pki.createCertificate();
  caCert.publicKey = keys.publicKey;
  caCert.serialNumber = serial();
  caCert.validity.notBefore = new Date(now.getTime() - 60_000);
  caCert.validity.notAfter = new Date(now.getTime() + (options.validityMs ?? 10 * YEAR));
  // A serial in the subject tells CAs apart in a bundle that holds an old and a new one.
  const subject = [
    { name: "commonName", value: "kubeplug-webhook-ca" },
    { name: "serialNumber", value: caCert.serialNumber },
  ];
  caCert.setSubject(subject);
  caCert.setIssuer(subject);
  caCert.setExtensions([
    { name: "basicConstraints", cA: true, critical: true },
    { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    { name: "subjectKeyIdentifier" },
  ]);
  caCert.sign(keys.privateKey, forge.md.sha256.create());
  return { cert: pki.certificateToPem(caCert), key: pki.privateKeyToPem(keys.privateKey) };
}

/**
 * Issues a serving certificate for `hosts` signed by `ca`, valid for `validityMs` (default 1 year)
 * but never past the CA's own expiry.
 */
export function issueServingCert(options: { hosts: readonly string[]; ca: CaPair; validityMs?: number; now?: Date }): {
  cert: string;
  key: string;
} {
  const now = options.now ?? new Date();
  const pki = forge.pki;
  const caCert = pki.certificateFromPem(options.ca.cert);
  const caKey = pki.privateKeyFromPem(options.ca.key) as forge.pki.rsa.PrivateKey;
  const keys = pki.rsa.generateKeyPair(2048);
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  const certEnd = now.getTime() + (options.validityMs ?? YEAR);
  cert.validity.notAfter = new Date(Math.min(certEnd, caCert.validity.notAfter.getTime()));
  cert.setSubject([{ name: "commonName", value: options.hosts[0] ?? "kubeplug-webhook" }]);
  cert.setIssuer(caCert.subject.attributes);
  cert.setExtensions([
    { name: "basicConstraints", cA: false },
    { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
    { name: "extKeyUsage", serverAuth: true },
    {
      name: "subjectAltName",
      altNames: options.hosts.map((h) => (IP.test(h) ? { type: 7, ip: h } : { type: 2, value: h })),
    },
  ]);
  cert.sign(caKey, forge.md.sha256.create());
  return { cert: pki.certificateToPem(cert), key: pki.privateKeyToPem(keys.privateKey) };
}

/** Creates (or reuses) a CA and issues a serving certificate for `hosts`. */
export function generateTls(options: CertOptions): TlsBundle & { caKey: string } {
  const ca =
    options.caCert && options.caKey
      ? { cert: options.caCert, key: options.caKey }
      : generateCa({ validityMs: options.caValidityMs, now: options.now });
  const serving = issueServingCert({ hosts: options.hosts, ca, validityMs: options.certValidityMs, now: options.now });
  return { ca: ca.cert, caKey: ca.key, ...serving };
}

/** Validity window and SANs of a PEM certificate (via node's X509Certificate: no parsing by hand). */
export async function describeCert(pem: string): Promise<{ notBefore: Date; notAfter: Date; hosts: string[] }> {
  const { X509Certificate } = await import("node:crypto");
  const x = new X509Certificate(pem);
  const hosts = (x.subjectAltName ?? "")
    .split(", ")
    .map((s) => s.replace(/^(DNS|IP Address):/, ""))
    .filter(Boolean);
  return { notBefore: new Date(x.validFrom), notAfter: new Date(x.validTo), hosts };
}

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

/** Creates (or reuses) a CA and issues a serving certificate for `hosts`. */
export function generateTls(options: CertOptions): TlsBundle & { caKey: string } {
  const now = options.now ?? new Date();
  const pki = forge.pki;
  let caCert: forge.pki.Certificate;
  let caKey: forge.pki.rsa.PrivateKey;
  if (options.caCert && options.caKey) {
    caCert = pki.certificateFromPem(options.caCert);
    caKey = pki.privateKeyFromPem(options.caKey) as forge.pki.rsa.PrivateKey;
  } else {
    const keys = pki.rsa.generateKeyPair(2048);
    caKey = keys.privateKey;
    caCert = pki.createCertificate();
    caCert.publicKey = keys.publicKey;
    caCert.serialNumber = serial();
    caCert.validity.notBefore = new Date(now.getTime() - 60_000);
    caCert.validity.notAfter = new Date(now.getTime() + (options.caValidityMs ?? 10 * YEAR));
    const subject = [{ name: "commonName", value: "kubeplug-webhook-ca" }];
    caCert.setSubject(subject);
    caCert.setIssuer(subject);
    caCert.setExtensions([
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
      { name: "subjectKeyIdentifier" },
    ]);
    caCert.sign(caKey, forge.md.sha256.create());
  }
  const keys = pki.rsa.generateKeyPair(2048);
  const cert = pki.createCertificate();
  cert.publicKey = keys.publicKey;
  cert.serialNumber = serial();
  cert.validity.notBefore = new Date(now.getTime() - 60_000);
  const certEnd = now.getTime() + (options.certValidityMs ?? YEAR);
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
  return {
    ca: pki.certificateToPem(caCert),
    caKey: pki.privateKeyToPem(caKey),
    cert: pki.certificateToPem(cert),
    key: pki.privateKeyToPem(keys.privateKey),
  };
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

/** Where the webhook server gets its certificate from, and how it learns of a new one. */

/** A serving certificate and key (PEM), with the CA that verifies it when known. */
export interface ServingCert {
  cert: string;
  key: string;
  ca?: string;
}

/** A source of serving certificates that may change over time (rotation, cert-manager renewal). */
export interface CertSource {
  /** The current certificate, or undefined while none is available yet. */
  current(): ServingCert | undefined;
  /** Calls `listener` with every new certificate. */
  onChange(listener: (cert: ServingCert) => void): void;
}

/** A CertSource with a settable value; the concrete sources feed it. */
export class CertHolder implements CertSource {
  private value: ServingCert | undefined;
  private readonly listeners: ((cert: ServingCert) => void)[] = [];

  current(): ServingCert | undefined {
    return this.value;
  }

  onChange(listener: (cert: ServingCert) => void): void {
    this.listeners.push(listener);
  }

  /**
   * Sets a new certificate; listeners run only when the certificate or key differs from the current
   * one (a CA bundle that changes alone, during a CA rotation, is only stored).
   */
  set(cert: ServingCert): void {
    const same = this.value && this.value.cert === cert.cert && this.value.key === cert.key;
    this.value = cert;
    if (same) return;
    for (const listener of this.listeners) listener(cert);
  }
}

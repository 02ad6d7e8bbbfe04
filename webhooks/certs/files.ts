/**
 * cert-manager mode: the serving certificate comes from `tls.crt`/`tls.key` (and `ca.crt`) in a
 * mounted directory. The kubelet updates a mounted Secret by swapping a symlink, so the directory is
 * watched and, as a fallback for file systems without events, checked every 10 s. The caBundle is
 * left alone: cert-manager's CA injector owns it.
 */
import { watch } from "node:fs";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createSecureContext } from "node:tls";
import type { Logger, Runnable } from "../../core/runtime.ts";
import { untilAborted } from "../../core/sleep.ts";
import { CertHolder } from "./source.ts";

/** Watches a certificate directory and keeps `holder` current. Runs on every replica. */
export class FileCertWatcher implements Runnable {
  readonly name = "webhook-cert-files";
  readonly needsLeaderElection = false;
  readonly holder = new CertHolder();
  private readonly dir: string;
  private readonly log: Logger;
  private readonly pollMs: number;

  constructor(dir: string, log: Logger, pollMs = 10_000) {
    this.dir = dir;
    this.log = log.child({ component: "webhook-certs", dir });
    this.pollMs = pollMs;
  }

  /** Reads the files once; false (and a log line) while they are missing or incomplete. */
  async load(): Promise<boolean> {
    try {
      const [cert, key] = await Promise.all([
        readFile(join(this.dir, "tls.crt"), "utf8"),
        readFile(join(this.dir, "tls.key"), "utf8"),
      ]);
      const ca = await readFile(join(this.dir, "ca.crt"), "utf8").catch(() => undefined);
      if (!cert.includes("BEGIN CERTIFICATE") || !key.includes("PRIVATE KEY")) return false;
      // A writer that replaces the two files one by one passes through a mismatched pair: skip it.
      createSecureContext({ cert, key });
      const before = this.holder.current();
      this.holder.set({ cert, key, ...(ca ? { ca } : {}) });
      if (before && before.cert !== cert) this.log.info("reloaded the serving certificate from files");
      return true;
    } catch (err) {
      this.log.debug({ err: String(err) }, "certificate files not readable yet");
      return false;
    }
  }

  async start(signal: AbortSignal): Promise<void> {
    await this.load();
    let watcher: ReturnType<typeof watch> | undefined;
    try {
      watcher = watch(this.dir, () => void this.load());
    } catch (err) {
      this.log.warn({ err: String(err) }, "cannot watch the certificate directory; polling only");
    }
    const timer = setInterval(() => void this.load(), this.pollMs);
    await untilAborted(signal);
    clearInterval(timer);
    watcher?.close();
  }
}

/**
 * A real local Kubernetes control plane: etcd, kube-apiserver and kube-controller-manager on free
 * loopback ports, in a fresh temporary directory. Several can run side by side.
 *
 * Guarantees: `stop()` ends every process it started and removes its directory; so does the exit of
 * the owning process, however it ends (see processes.ts). `startControlPlane` resolves only once
 * `/readyz` passes and (with a controller manager) the `default` ServiceAccount exists.
 */
import { execFile } from "node:child_process";
import { generateKeyPairSync, randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { KubeConfig } from "@kubernetes/client-node";
import { type ControlPlaneBinaries, ensureBinaries } from "./binaries.ts";
import { ProcessGroup, type Started } from "./processes.ts";

const run = promisify(execFile);

/** Options for {@link startControlPlane}. */
export interface ControlPlaneOptions {
  /** Start kube-controller-manager (Deployments, garbage collection, SA tokens). Default true. */
  controllerManager?: boolean;
  /** Extra kube-apiserver flags, e.g. `--audit-log-path=...`. */
  apiserverArgs?: string[];
  /** Service CIDR; a /16 holds 65k Services. */
  serviceClusterIpRange?: string;
  /** Parent of the temporary directory; default /dev/shm when present (etcd's fsyncs are free there). */
  baseDir?: string;
  /** How long to wait for readiness; default 60 s. */
  readyTimeoutMs?: number;
}

/** A process of the control plane that faults can be injected into. */
export type ControlPlaneComponent = "etcd" | "kube-apiserver" | "kube-controller-manager";

/** A running control plane. */
export interface ControlPlane {
  /** A kubeconfig file with admin (system:masters) credentials and the API server's CA. */
  kubeconfigPath: string;
  kubeConfig: KubeConfig;
  /** `https://127.0.0.1:<port>` */
  server: string;
  /** The static admin bearer token. */
  token: string;
  /** CA bundle (PEM) that verifies the API server's serving certificate. */
  caPem: string;
  /** The temporary directory (logs, certificates, data); removed by stop(). */
  dir: string;
  /** Pids of the running processes (etcd, kube-apiserver, kube-controller-manager). */
  pids(): number[];
  /**
   * Fault injection: SIGKILLs one component and resolves once it has exited. Its data (etcd's data
   * directory, the API server's certificates) stays, so {@link ControlPlane.start} brings it back as it was.
   */
  kill(component: ControlPlaneComponent): Promise<void>;
  /**
   * Starts a killed component again with the same flags, ports and data; resolves once it is ready
   * (etcd's /health, the API server's /readyz), or right away with `{ wait: false }`.
   */
  start(component: ControlPlaneComponent, options?: { wait?: boolean }): Promise<void>;
  /** Stops every process and removes `dir`. Idempotent. */
  stop(): Promise<void>;
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
/**
 * A port nobody listens on, for a process started next to bind. It is picked
 * below the kernel's ephemeral range: a port from listen(0) lies inside that
 * range, and between our close and the child's bind the kernel may hand it to
 * an outgoing connection as its source port (the API server's to etcd, say),
 * and the child then fails with EADDRINUSE. That happened once in CI to the
 * bench's webhook port. Ports below the range are only ever taken by a bind,
 * so the check here holds until the child binds, except against another
 * process doing the same pick at the same moment, which the random start and
 * the in-process set make rare.
 */
export async function freePort(): Promise<number> {
  const low = ephemeralLow() - 1;
  const span = low - PICK_FLOOR;
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = PICK_FLOOR + Math.floor(Math.random() * span);
    if (handedOut.has(port)) continue;
    if (await canListen(port)) {
      handedOut.add(port);
      return port;
    }
  }
  throw new Error(`freePort: no free port between ${PICK_FLOOR} and ${low} after 200 tries`);
}

/** Above the well-known and registered ports the control plane and tools use (6443, 2379, 10257, ...). */
const PICK_FLOOR = 20000;
const handedOut = new Set<number>();

function ephemeralLow(): number {
  try {
    const low = Number(readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/)[0]);
    if (Number.isInteger(low) && low > PICK_FLOOR + 1000) return low;
  } catch {
    // not Linux: fall through to the Linux default
  }
  return 32768;
}

function canListen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function httpsStatus(url: string, token: string, ca?: string): Promise<number> {
  return new Promise((resolve) => {
    const req = request(
      url,
      {
        headers: { Authorization: `Bearer ${token}` },
        ...(ca ? { ca } : { rejectUnauthorized: false }),
        timeout: 2_000,
      },
      (res) => {
        res.resume();
        resolve(res.statusCode ?? 0);
      },
    );
    req.on("error", () => resolve(0));
    req.on("timeout", () => req.destroy());
    req.end();
  });
}

async function waitFor(what: string, check: () => Promise<boolean>, deadline: number, proc: Started[]): Promise<void> {
  for (;;) {
    if (await check()) return;
    for (const p of proc) {
      if (p.child.exitCode !== null || p.child.signalCode !== null) {
        const log = readFileSync(p.logFile, "utf8").split("\n").slice(-15).join("\n");
        throw new Error(`${p.name} exited (${p.child.exitCode ?? p.child.signalCode}) while waiting for ${what}:\n${log}`);
      }
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

async function minorVersion(binary: string): Promise<number> {
  const { stdout } = await run(binary, ["--version"]);
  const m = /v1\.(\d+)/.exec(stdout);
  return m ? Number(m[1]) : 99;
}

function kubeconfigYaml(server: string, caPem: string, token: string): string {
  const ca = Buffer.from(caPem).toString("base64");
  return `apiVersion: v1
kind: Config
clusters:
- name: kubeplug-local
  cluster:
    server: ${server}
    certificate-authority-data: ${ca}
users:
- name: admin
  user:
    token: ${token}
contexts:
- name: kubeplug-local
  context:
    cluster: kubeplug-local
    user: admin
    namespace: default
current-context: kubeplug-local
`;
}

/** Starts a control plane; see {@link ControlPlane}. Retries once on a port collision. */
export async function startControlPlane(options: ControlPlaneOptions = {}): Promise<ControlPlane> {
  const binaries = await ensureBinaries();
  try {
    return await startOnce(binaries, options);
  } catch (err) {
    if (!/address already in use|bind:/.test(String(err))) throw err;
    return startOnce(binaries, options);
  }
}

async function startOnce(bin: ControlPlaneBinaries, options: ControlPlaneOptions): Promise<ControlPlane> {
  const base = options.baseDir ?? (existsSync("/dev/shm") ? "/dev/shm" : tmpdir());
  const dir = mkdtempSync(join(base, "kubeplug-cp-"));
  const group = new ProcessGroup(dir);
  try {
    const deadline = Date.now() + (options.readyTimeoutMs ?? 60_000);
    const [etcdPort, peerPort, apiPort] = [await freePort(), await freePort(), await freePort()];
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const etcd = group.start("etcd", bin.etcd, [
      `--data-dir=${join(dir, "etcd")}`,
      `--listen-client-urls=${etcdUrl}`,
      `--advertise-client-urls=${etcdUrl}`,
      `--listen-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-advertise-peer-urls=http://127.0.0.1:${peerPort}`,
      `--initial-cluster=default=http://127.0.0.1:${peerPort}`,
      "--log-level=warn",
    ]);

    const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
    const saKey = join(dir, "sa.key");
    const saPub = join(dir, "sa.pub");
    writeFileSync(saKey, privateKey.export({ type: "pkcs1", format: "pem" }));
    writeFileSync(saPub, publicKey.export({ type: "spki", format: "pem" }));
    const token = randomBytes(24).toString("hex");
    writeFileSync(join(dir, "tokens.csv"), `${token},admin,admin,"system:masters"\n`);
    const certDir = join(dir, "certs");

    const etcdHealthy = async () => {
      try {
        return (await fetch(`${etcdUrl}/health`, { signal: AbortSignal.timeout(2_000) })).ok;
      } catch {
        return false;
      }
    };
    await waitFor("etcd", etcdHealthy, deadline, [etcd]);

    const apiMinor = await minorVersion(bin.kubeApiserver);
    const apiserver = group.start("kube-apiserver", bin.kubeApiserver, [
      `--etcd-servers=${etcdUrl}`,
      `--cert-dir=${certDir}`,
      `--secure-port=${apiPort}`,
      "--bind-address=127.0.0.1",
      "--advertise-address=127.0.0.1",
      `--service-cluster-ip-range=${options.serviceClusterIpRange ?? "10.0.0.0/16"}`,
      "--authorization-mode=RBAC",
      `--token-auth-file=${join(dir, "tokens.csv")}`,
      "--service-account-issuer=https://kubernetes.default.svc",
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      "--allow-privileged=true",
      ...(apiMinor < 24 ? ["--insecure-port=0"] : []),
      ...(options.apiserverArgs ?? []),
    ]);
    const server = `https://127.0.0.1:${apiPort}`;
    await waitFor("kube-apiserver /readyz", async () => (await httpsStatus(`${server}/readyz`, token)) === 200, deadline, [
      etcd,
      apiserver,
    ]);
    // kube-apiserver writes a self-signed CA and serving certificate into cert-dir; the file holds
    // the serving certificate followed by its CA, which is what a client needs to verify it.
    const caPem = readFileSync(join(certDir, "apiserver.crt"), "utf8");
    const kubeconfigPath = join(dir, "kubeconfig");
    writeFileSync(kubeconfigPath, kubeconfigYaml(server, caPem, token), { mode: 0o600 });
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromFile(kubeconfigPath);

    const components: Partial<Record<ControlPlaneComponent, Started>> = { etcd, "kube-apiserver": apiserver };
    const readiness: Partial<Record<ControlPlaneComponent, () => Promise<boolean>>> = {
      etcd: etcdHealthy,
      "kube-apiserver": async () => (await httpsStatus(`${server}/readyz`, token)) === 200,
    };
    if (options.controllerManager !== false && bin.kubeControllerManager) {
      const kcmMinor = await minorVersion(bin.kubeControllerManager);
      const kcm = group.start("kube-controller-manager", bin.kubeControllerManager, [
        `--kubeconfig=${kubeconfigPath}`,
        "--leader-elect=false",
        "--controllers=*",
        "--secure-port=0",
        ...(kcmMinor < 24 ? ["--port=0"] : []),
        `--service-account-private-key-file=${saKey}`,
        `--root-ca-file=${join(certDir, "apiserver.crt")}`,
      ]);
      // The ServiceAccount controller creating `default` shows the controller manager is working;
      // Pods cannot be admitted in a namespace before it exists.
      await waitFor(
        "kube-controller-manager (the default ServiceAccount)",
        async () => (await httpsStatus(`${server}/api/v1/namespaces/default/serviceaccounts/default`, token, caPem)) === 200,
        deadline,
        [etcd, apiserver, kcm],
      );
      components["kube-controller-manager"] = kcm;
    }
    const component = (name: ControlPlaneComponent): Started => {
      const started = components[name];
      if (!started) throw new Error(`this control plane runs no ${name} (allowed: ${Object.keys(components).join(", ")})`);
      return started;
    };

    return {
      kubeconfigPath,
      kubeConfig,
      server,
      token,
      caPem,
      dir,
      pids: () => group.pids(),
      kill: (name) => group.kill(component(name)),
      start: async (name, { wait = true } = {}) => {
        const started = component(name);
        group.restart(started);
        const ready = readiness[name];
        if (wait && ready) await waitFor(`${name} after a restart`, ready, Date.now() + 180_000, [started]);
      },
      stop: () => group.stop(),
    };
  } catch (err) {
    await group.stop(1_000);
    throw err;
  }
}

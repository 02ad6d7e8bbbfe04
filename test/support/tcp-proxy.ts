/**
 * A loopback TCP proxy for fault injection in front of the API server: cut every connection, refuse
 * new ones, or hold every byte (a "blackhole": connections stay open, nothing gets through).
 *
 * TLS passes through untouched, so a client keeps verifying the API server's own certificate; the
 * serving certificate covers 127.0.0.1, which is why {@link proxiedKubeConfig} only changes the port.
 *
 * Guarantees: in blackhole mode bytes (and closes) are held in order, not dropped, and are delivered
 * when the mode goes back to "pass", so a TLS stream survives a blackhole intact. A close of either
 * side while passing closes the other side.
 */
import { createServer, type Server, type Socket, connect as tcpConnect } from "node:net";
import { KubeConfig } from "@kubernetes/client-node";

/** pass: forward everything; refuse: close new connections at once; blackhole: forward nothing. */
export type ProxyMode = "pass" | "refuse" | "blackhole";

/** A running proxy; see the module comment. */
export interface TcpProxy {
  /** The port on 127.0.0.1 the proxy listens on. */
  readonly port: number;
  /** Destroys every current connection (both sides). */
  cut(): void;
  /**
   * Silences every current connection for good (nothing more is forwarded either way, nothing is
   * closed), while new connections pass: a NAT or load balancer that dropped its state.
   */
  freezeCurrent(): void;
  /** Switches the mode; going back to "pass" delivers what a blackhole held. */
  setMode(mode: ProxyMode): void;
  /** The number of open client connections. */
  connections(): number;
  /** Stops listening and destroys every connection. */
  close(): Promise<void>;
}

/** What one direction of a connection holds while it may not forward. */
type Held = Buffer | "end" | "destroy";

/** One direction of a proxied connection: what goes toward `sink`, held while it may not forward. */
class Direction {
  private readonly held: Held[] = [];
  private readonly sink: Socket;
  private readonly canForward: () => boolean;
  constructor(sink: Socket, canForward: () => boolean) {
    this.sink = sink;
    this.canForward = canForward;
  }

  push(item: Held): void {
    this.held.push(item);
    this.flush();
  }

  flush(): void {
    while (this.held.length > 0 && this.canForward()) {
      const item = this.held.shift() as Held;
      if (item === "end") {
        if (!this.sink.writableEnded) this.sink.end();
      } else if (item === "destroy") this.sink.destroy();
      else if (!this.sink.destroyed) this.sink.write(item);
    }
  }
}

/** Starts a proxy on a free loopback port that forwards to `targetHost:targetPort`. */
export async function startTcpProxy(targetHost: string, targetPort: number): Promise<TcpProxy> {
  let mode: ProxyMode = "pass";
  const pairs = new Set<{ client: Socket; upstream: Socket; directions: Direction[]; frozen: boolean }>();

  const server: Server = createServer({ allowHalfOpen: true }, (client) => {
    if (mode === "refuse") {
      client.destroy();
      return;
    }
    const upstream = tcpConnect({ host: targetHost, port: targetPort, allowHalfOpen: true });
    const pair = { client, upstream, directions: [] as Direction[], frozen: false };
    const canForward = () => mode === "pass" && !pair.frozen;
    const toUpstream = new Direction(upstream, canForward);
    const toClient = new Direction(client, canForward);
    pair.directions.push(toUpstream, toClient);
    pairs.add(pair);
    const wire = (source: Socket, direction: Direction) => {
      source.on("data", (chunk: Buffer) => direction.push(chunk));
      source.on("end", () => direction.push("end"));
      // A close of one side closes the other one too, once it may be forwarded; after an error
      // (a reset) at once, otherwise after the bytes written before it.
      source.on("close", (hadError: boolean) => direction.push(hadError ? "destroy" : "end"));
      source.on("error", () => {});
    };
    wire(client, toUpstream);
    wire(upstream, toClient);
    client.on("close", () => {
      if (upstream.destroyed) pairs.delete(pair);
    });
    upstream.on("close", () => {
      if (client.destroyed) pairs.delete(pair);
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  if (!address || typeof address !== "object") throw new Error("the proxy has no TCP address");

  const cut = () => {
    for (const pair of pairs) {
      pair.client.destroy();
      pair.upstream.destroy();
    }
    pairs.clear();
  };

  return {
    port: address.port,
    cut,
    freezeCurrent() {
      for (const pair of pairs) pair.frozen = true;
    },
    setMode(next) {
      mode = next;
      if (mode === "pass") for (const pair of pairs) for (const direction of pair.directions) direction.flush();
    },
    connections: () => [...pairs].filter((p) => !p.client.destroyed).length,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        cut();
      }),
  };
}

/** A copy of `kc` whose current cluster is reached through a proxy on 127.0.0.1:`port`. */
export function proxiedKubeConfig(kc: KubeConfig, port: number): KubeConfig {
  const current = kc.getCurrentCluster();
  if (!current) throw new Error("the kubeconfig has no current cluster");
  const url = new URL(current.server);
  url.port = String(port);
  const server = url.toString().replace(/\/+$/, "");
  const copy = new KubeConfig();
  copy.loadFromOptions({
    clusters: kc.clusters.map((c) => (c.name === current.name ? { ...c, server } : c)),
    users: kc.users,
    contexts: kc.contexts,
    currentContext: kc.getCurrentContext(),
  });
  return copy;
}

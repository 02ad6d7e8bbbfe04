/**
 * Health and readiness checks, served as `/healthz` and `/readyz` (Kubernetes' own endpoint style:
 * `ok` or a list of failed checks; `?verbose` lists every check; `/readyz/<name>` runs one).
 */
import type { Server } from "node:http";
import express from "express";

/** A check: resolves when healthy (optionally with a note `?verbose` shows), throws (or rejects) with the reason otherwise. */
// biome-ignore lint/suspicious/noConfusingVoidType: a check that only throws returns nothing.
export type Check = () => void | string | Promise<void | string>;

/** Named health (liveness) and readiness checks. */
export class HealthChecks {
  private readonly health = new Map<string, Check>();
  private readonly ready = new Map<string, Check>();

  /** Adds a liveness check (failing it restarts the pod). */
  addHealthCheck(name: string, check: Check): void {
    if (this.health.has(name)) throw new Error(`health check "${name}" already exists`);
    this.health.set(name, check);
  }

  /** Adds a readiness check (failing it takes the pod out of Service endpoints). */
  addReadyCheck(name: string, check: Check): void {
    if (this.ready.has(name)) throw new Error(`ready check "${name}" already exists`);
    this.ready.set(name, check);
  }

  /** Runs checks; returns failures by name. */
  async run(
    which: "health" | "ready",
    only?: string,
  ): Promise<{ results: [string, string | undefined, string | undefined][]; ok: boolean }> {
    const checks = which === "health" ? this.health : this.ready;
    const selected = only ? [...checks].filter(([n]) => n === only) : [...checks];
    const results = await Promise.all(
      selected.map(async ([name, check]): Promise<[string, string | undefined, string | undefined]> => {
        try {
          const note = await check();
          return [name, undefined, typeof note === "string" ? note : undefined];
        } catch (err) {
          return [name, err instanceof Error ? err.message : String(err), undefined];
        }
      }),
    );
    return { results, ok: results.every(([, e]) => e === undefined) && (!only || selected.length > 0) };
  }

  /** An express app serving /healthz and /readyz. */
  app(): express.Express {
    const app = express();
    app.disable("x-powered-by");
    for (const [path, which] of [
      ["/healthz", "health"],
      ["/readyz", "ready"],
    ] as const) {
      const handler = async (req: express.Request, res: express.Response) => {
        const only = typeof req.params.name === "string" ? req.params.name : undefined;
        const { results, ok } = await this.run(which, only);
        const verbose = "verbose" in req.query || !ok;
        const lines = results.map(([name, err, note]) =>
          err === undefined ? `[+]${name} ok${note ? `: ${note}` : ""}` : `[-]${name} failed: ${err}`,
        );
        res
          .status(ok ? 200 : 500)
          .type("text/plain")
          .send(verbose ? `${lines.join("\n")}\n${path.slice(1)} check ${ok ? "passed" : "failed"}\n` : "ok");
      };
      app.get(path, handler);
      app.get(`${path}/:name`, handler);
    }
    return app;
  }
}

/** Starts an express app on host:port and resolves once listening. */
export function listen(app: express.Express, address: { host: string; port: number }): Promise<Server> {
  return new Promise((resolve, reject) => {
    const server = app.listen(address.port, address.host, (err?: Error) => (err ? reject(err) : resolve(server)));
    server.on("error", reject);
  });
}

/** Closes a server, ending idle keep-alive connections so close does not hang. */
export function close(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeIdleConnections();
  });
}

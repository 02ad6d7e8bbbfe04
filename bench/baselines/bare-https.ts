/**
 * The webhook server's floor: a bare node HTTPS server (same TLS settings, same certificate type)
 * answering every POST with the bytes kubeplug's webhook server answered. Run as its own process,
 * like the manager, so both are measured alike. Prints its port. Usage: node bare-https.ts ANSWER_FILE
 */
import { readFileSync } from "node:fs";
import { createServer } from "node:https";
import { generateTls } from "../../webhooks/index.ts";

const answer = readFileSync(process.argv[2] as string, "utf8");
const tls = generateTls({ hosts: ["127.0.0.1"] });
const server = createServer({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, (req, res) => {
  req.resume();
  req.on("end", () => {
    res.writeHead(200, { "content-type": "application/json; charset=utf-8" });
    res.end(answer);
  });
});
server.listen(0, "127.0.0.1", () => process.stdout.write(`port ${(server.address() as { port: number }).port}\n`));
process.on("SIGTERM", () => server.close(() => process.exit(0)));

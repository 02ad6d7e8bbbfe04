/**
 * The admission webhooks' floor: a bare node HTTPS server (own process, same TLS settings and
 * certificate type as kubeplug's) that admits every AdmissionReview, echoing its uid, with no
 * parsing, validation or patch. Registered as a mutating and a validating webhook for WebApp creates
 * (the calls kubeplug's webhooks get in a burst), it shows how fast the API server can call a
 * webhook at all on this machine while the burst loads it. Prints its port and its CA (base64 PEM,
 * a webhook's caBundle) on one line. Usage: node echo-webhook.ts
 */
import { createServer } from "node:https";
import { generateTls } from "../../webhooks/index.ts";

const tls = generateTls({ hosts: ["127.0.0.1"] });
const server = createServer({ cert: tls.cert, key: tls.key, minVersion: "TLSv1.2" }, (req, res) => {
  const chunks: Buffer[] = [];
  req.on("data", (chunk: Buffer) => chunks.push(chunk));
  req.on("end", () => {
    // The request's uid, which the API server requires back; the first "uid" of a review is request.uid.
    const uid = /"uid":"([^"]+)"/.exec(Buffer.concat(chunks).toString("utf8"))?.[1] ?? "";
    const body = JSON.stringify({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid, allowed: true } });
    res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(body) });
    res.end(body);
  });
});
server.listen(0, "127.0.0.1", () => {
  const { port } = server.address() as { port: number };
  process.stdout.write(`port ${port} ca ${Buffer.from(tls.ca).toString("base64")}\n`);
});
process.on("SIGTERM", () => server.close(() => process.exit(0)));

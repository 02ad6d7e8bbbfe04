/**
 * The steps of a self-managed CA rotation (webhooks/certs/rotation.ts), on certificates made here:
 * a new CA joins the bundle before it signs anything served, a serving certificate from the old CA
 * is switched only then, and the old CA leaves the bundle when it expires.
 */
import assert from "node:assert/strict";
import { describe, it } from "node:test";
import type { Secret } from "../../core/runtime.ts";
import { generateCa, issueServingCert } from "../../webhooks/certs/generate.ts";
import { nextStep, parseSecret } from "../../webhooks/certs/rotation.ts";

const HOSTS = ["127.0.0.1", "kubeplug-webhook.ns.svc"];
const b64 = (s: string) => Buffer.from(s).toString("base64");
const secret = (data: Record<string, string>): Secret => ({
  apiVersion: "v1",
  kind: "Secret",
  metadata: { name: "tls", namespace: "ns" },
  data: Object.fromEntries(Object.entries(data).map(([k, v]) => [k, b64(v)])),
});
const S = 1_000;

describe("CA rotation steps", () => {
  const t0 = Date.now();
  const oldCa = generateCa({ validityMs: 100 * S, now: new Date(t0) });
  const oldServing = issueServingCert({ hosts: HOSTS, ca: oldCa, validityMs: 60 * S, now: new Date(t0) });
  const policy = (now: number) => ({ hosts: HOSTS, renewBeforeMs: 20 * S, now });

  it("does nothing while the CA and the certificate are fresh, and wakes when the certificate is due", () => {
    const step = nextStep(
      parseSecret(secret({ "ca.crt": oldCa.cert, "ca.key": oldCa.key, "tls.crt": oldServing.cert, "tls.key": oldServing.key })),
      policy(t0 + S),
    );
    assert.equal(step.step, "none");
    assert.ok(step.step === "none" && Math.abs(step.wakeAt - (t0 + 40 * S)) < 2 * S, "renewal 20 s before the 60 s expiry");
  });

  it("adds a new CA (old one kept) 2 x renewBefore ahead of the CA's expiry, or when ca.key is missing", () => {
    const data = { "ca.crt": oldCa.cert, "ca.key": oldCa.key, "tls.crt": oldServing.cert, "tls.key": oldServing.key };
    const step = nextStep(parseSecret(secret(data)), policy(t0 + 61 * S));
    assert.equal(step.step, "add-ca");
    assert.equal(step.step === "add-ca" && step.keep.length, 1);
    const { "ca.key": _, ...noKey } = data;
    assert.equal(nextStep(parseSecret(secret(noKey)), policy(t0 + S)).step, "add-ca");
  });

  it("switches the serving certificate to the new CA, waiting for the caBundles unless the old one is already invalid", () => {
    const newCa = generateCa({ validityMs: 100 * S, now: new Date(t0 + 61 * S) });
    // Renewed at 40 s from the old CA: it ends with the CA, at 100 s.
    const renewed = issueServingCert({ hosts: HOSTS, ca: oldCa, validityMs: 60 * S, now: new Date(t0 + 41 * S) });
    const data = {
      "ca.crt": oldCa.cert + newCa.cert,
      "ca.key": newCa.key,
      "tls.crt": renewed.cert,
      "tls.key": renewed.key,
    };
    const step = nextStep(parseSecret(secret(data)), policy(t0 + 62 * S));
    assert.ok(
      step.step === "serve" && step.waitForBundles && step.ca.pem.trim() === newCa.cert.trim() && step.keep.length === 2,
      step.step,
    );
    const late = nextStep(parseSecret(secret(data)), policy(t0 + 101 * S));
    assert.ok(late.step === "serve" && !late.waitForBundles, "the old serving certificate has expired: no wait");

    // Served from the new CA, the old one stays until it expires, then is pruned.
    const served = issueServingCert({ hosts: HOSTS, ca: newCa, validityMs: 60 * S, now: new Date(t0 + 63 * S) });
    const switched = { ...data, "tls.crt": served.cert, "tls.key": served.key };
    const waiting = nextStep(parseSecret(secret(switched)), policy(t0 + 64 * S));
    assert.ok(waiting.step === "none" && Math.abs(waiting.wakeAt - (t0 + 100 * S)) < 2 * S, "wakes when the old CA expires");
    const pruned = nextStep(parseSecret(secret(switched)), policy(t0 + 101 * S));
    assert.ok(pruned.step === "prune" && pruned.keep.length === 1 && pruned.keep[0]?.pem.trim() === newCa.cert.trim());
  });

  it("issues everything anew when the serving certificate is not signed by a CA of the bundle", () => {
    const other = generateCa({ validityMs: 100 * S });
    const step = nextStep(
      parseSecret(secret({ "ca.crt": other.cert, "ca.key": other.key, "tls.crt": oldServing.cert, "tls.key": oldServing.key })),
      policy(t0),
    );
    assert.ok(step.step === "issue" && /not signed by a CA in ca.crt/.test(step.reason));
    assert.equal(nextStep(parseSecret(undefined), policy(t0)).step, "issue");
  });
});

import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { z } from "zod";
import { causesFromZod, shownValue } from "../../webhooks/review.ts";

/** An object `depth` levels deep around `leaf`, built without recursion. */
function nested(depth: number, leaf: unknown): unknown {
  let value = leaf;
  for (let i = 0; i < depth; i++) value = { a: value };
  return value;
}

describe("shownValue (a value in a field error)", () => {
  it("shows scalars and small objects and arrays as JSON, as JSON.stringify does", () => {
    for (const value of [11, "LoadBalancer", true, null, { a: [1, "x", { b: null }] }, [], {}, [[1], { 'k/"': 2 }]]) {
      assert.equal(shownValue(value), JSON.stringify(value));
    }
  });

  it("names an object or array too large to show by its type, as the API server does", () => {
    assert.equal(shownValue(nested(20_000, "x")), '"object"');
    assert.equal(shownValue(Array.from({ length: 10_000 }, (_, i) => i)), '"array"');
    assert.equal(shownValue({ ["k".repeat(100_000)]: 1 }), '"object"');
    assert.equal(shownValue({ a: "v".repeat(100_000) }), '"object"');
  });

  it("cuts a long string, saying how much was left out", () => {
    const shown = shownValue("i".repeat(1_000));
    assert.ok(shown.startsWith(`"${"i".repeat(255)}... (`), shown);
    assert.match(shown, /\(746 more characters\)$/);
  });

  it("keeps a field error short whatever the value", () => {
    const schema = z.object({ image: z.string() });
    const spec = { image: nested(20_000, 1) };
    const error = schema.safeParse(spec).error;
    assert.ok(error);
    const [cause] = causesFromZod(error, "spec", spec);
    assert.equal(cause?.field, "spec.image");
    assert.match(cause?.message ?? "", /^Invalid value: "object": /);
    assert.ok((cause?.message.length ?? 0) < 400);
  });
});

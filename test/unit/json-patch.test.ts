import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { jsonPatch } from "../../webhooks/review.ts";

describe("jsonPatch", () => {
  it("is empty for equal JSON values, whatever the key order or undefined members", () => {
    assert.deepEqual(jsonPatch({ a: 1, b: { c: [1, 2] } }, { b: { c: [1, 2] }, a: 1 }), []);
    assert.deepEqual(jsonPatch([{ x: 1, y: 2 }], [{ y: 2, x: 1 }]), []);
    assert.deepEqual(jsonPatch({ a: 1, gone: undefined }, { a: 1 }), []);
    assert.deepEqual(jsonPatch(undefined, undefined), []);
  });

  it("adds what is missing, replaces what differs, removes what is gone", () => {
    assert.deepEqual(jsonPatch({ spec: { a: 1, b: 2 } }, { spec: { a: 1, c: 3, b: 4 } }), [
      { op: "add", path: "/spec/c", value: 3 },
      { op: "replace", path: "/spec/b", value: 4 },
    ]);
    assert.deepEqual(jsonPatch({ a: 1, "x/y": 2 }, { a: 1 }), [{ op: "remove", path: "/x~1y" }]);
    assert.deepEqual(jsonPatch({ l: [1, 2] }, { l: [2, 1] }), [{ op: "replace", path: "/l", value: [2, 1] }]);
  });
});

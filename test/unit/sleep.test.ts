import assert from "node:assert/strict";
import { getEventListeners } from "node:events";
import { describe, it } from "node:test";
import { untilAborted } from "../../core/sleep.ts";

describe("untilAborted", () => {
  it("resolves when the signal aborts and removes its listener", async () => {
    const abort = new AbortController();
    let done = false;
    const waiting = untilAborted(abort.signal).then(() => {
      done = true;
    });
    await new Promise((r) => setImmediate(r));
    assert.equal(done, false);
    assert.equal(getEventListeners(abort.signal, "abort").length, 1);
    abort.abort(new Error("stop"));
    await waiting;
    assert.equal(done, true);
    assert.equal(getEventListeners(abort.signal, "abort").length, 0);
  });

  it("resolves at once, without a listener, when the signal has already aborted", async () => {
    const signal = AbortSignal.abort(new Error("gone"));
    await untilAborted(signal);
    assert.equal(getEventListeners(signal, "abort").length, 0);
  });
});

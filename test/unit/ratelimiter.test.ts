import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  bucketRateLimiter,
  defaultControllerRateLimiter,
  exponentialFailureRateLimiter,
  maxOfRateLimiter,
  type RateLimiter,
} from "../../core/controller/ratelimiter.ts";

/** A clock that moves only when the test says so. */
function manualClock(start = 0) {
  let now = start;
  return {
    now: () => now,
    advance: (ms: number) => {
      now += ms;
    },
  };
}

function whenTimes<K>(limiter: RateLimiter<K>, key: K, times: number): number[] {
  return Array.from({ length: times }, () => limiter.when(key));
}

describe("exponentialFailureRateLimiter", () => {
  it("doubles the delay per failure of a key, starting at base", () => {
    const limiter = exponentialFailureRateLimiter<string>(5, 1_000_000);
    assert.deepEqual(whenTimes(limiter, "a", 5), [5, 10, 20, 40, 80]);
    assert.equal(limiter.numRequeues("a"), 5);
  });

  it("tracks keys independently", () => {
    const limiter = exponentialFailureRateLimiter<string>(1, 1000);
    whenTimes(limiter, "a", 3);
    assert.equal(limiter.when("b"), 1);
    assert.equal(limiter.numRequeues("a"), 3);
    assert.equal(limiter.numRequeues("b"), 1);
    assert.equal(limiter.numRequeues("never"), 0);
  });

  it("caps at max, even after very many failures", () => {
    const limiter = exponentialFailureRateLimiter<string>(5, 1000);
    const delays = whenTimes(limiter, "a", 2000);
    assert.deepEqual(delays.slice(0, 9), [5, 10, 20, 40, 80, 160, 320, 640, 1000]);
    assert.equal(delays.at(-1), 1000);
    assert.ok(delays.every((d) => Number.isFinite(d) && d <= 1000));
  });

  it("defaults to 5 ms .. 1000 s", () => {
    const limiter = exponentialFailureRateLimiter<string>();
    assert.equal(limiter.when("a"), 5);
    assert.equal(whenTimes(limiter, "a", 100).at(-1), 1_000_000);
  });

  it("forget starts the key from base again", () => {
    const limiter = exponentialFailureRateLimiter<string>(5, 1000);
    whenTimes(limiter, "a", 4);
    limiter.forget("a");
    assert.equal(limiter.numRequeues("a"), 0);
    assert.equal(limiter.when("a"), 5);
  });

  it("rejects bad bounds with an error naming the parameter", () => {
    assert.throws(() => exponentialFailureRateLimiter(-1, 10), /baseMs must be a number >= 0, got -1/);
    assert.throws(() => exponentialFailureRateLimiter(10, 5), /maxMs must be a number >= baseMs \(10\), got 5/);
  });
});

describe("bucketRateLimiter", () => {
  it("lets a full burst through, then spaces tokens 1/qps apart", () => {
    const clock = manualClock();
    const limiter = bucketRateLimiter<string>(10, 100, { clock });
    const delays = Array.from({ length: 103 }, (_, i) => limiter.when(`key-${i}`));
    assert.ok(delays.slice(0, 100).every((d) => d === 0));
    assert.deepEqual(delays.slice(100), [100, 200, 300]);
  });

  it("refills with time, paying off reserved tokens first", () => {
    const clock = manualClock();
    const limiter = bucketRateLimiter<string>(10, 100, { clock });
    whenTimes(limiter, "a", 102); // balance: -2 tokens
    clock.advance(1000); // +10 tokens -> 8
    const delays = whenTimes(limiter, "a", 9);
    assert.deepEqual(delays.slice(0, 8), [0, 0, 0, 0, 0, 0, 0, 0]);
    assert.equal(delays[8], 100);
  });

  it("never holds more than burst tokens", () => {
    const clock = manualClock();
    const limiter = bucketRateLimiter<string>(1, 3, { clock });
    assert.equal(limiter.when("a"), 0);
    clock.advance(3_600_000);
    assert.deepEqual(whenTimes(limiter, "a", 4), [0, 0, 0, 1000]);
  });

  it("returns fractional delays for fractional rates", () => {
    const clock = manualClock();
    const limiter = bucketRateLimiter<string>(3, 1, { clock });
    assert.equal(limiter.when("a"), 0);
    assert.ok(Math.abs(limiter.when("a") - 1000 / 3) < 1e-9);
  });

  it("is overall: forget does nothing and numRequeues is 0", () => {
    const clock = manualClock();
    const limiter = bucketRateLimiter<string>(1, 1, { clock });
    limiter.when("a");
    limiter.forget("a");
    assert.equal(limiter.numRequeues("a"), 0);
    assert.equal(limiter.when("b"), 1000);
  });

  it("with infinite qps never delays", () => {
    const limiter = bucketRateLimiter<string>(Number.POSITIVE_INFINITY, 1, { clock: manualClock() });
    assert.deepEqual(whenTimes(limiter, "a", 5), [0, 0, 0, 0, 0]);
  });

  it("rejects bad settings with an error naming the parameter", () => {
    assert.throws(() => bucketRateLimiter(0, 1), /qps must be a number > 0/);
    assert.throws(() => bucketRateLimiter(1, 0), /burst must be an integer >= 1, got 0/);
    assert.throws(() => bucketRateLimiter(1, 1.5), /burst must be an integer >= 1, got 1.5/);
  });
});

describe("maxOfRateLimiter", () => {
  function fixed(delay: number, requeues: number) {
    const forgotten: string[] = [];
    const asked: string[] = [];
    const limiter: RateLimiter<string> = {
      when: (key) => {
        asked.push(key);
        return delay;
      },
      forget: (key) => void forgotten.push(key),
      numRequeues: () => requeues,
    };
    return { limiter, forgotten, asked };
  }

  it("returns the longest delay and asks every limiter", () => {
    const a = fixed(10, 1);
    const b = fixed(30, 4);
    const c = fixed(20, 2);
    const limiter = maxOfRateLimiter(a.limiter, b.limiter, c.limiter);
    assert.equal(limiter.when("k"), 30);
    assert.deepEqual([a.asked, b.asked, c.asked], [["k"], ["k"], ["k"]]);
    assert.equal(limiter.numRequeues("k"), 4);
    limiter.forget("k");
    assert.deepEqual([a.forgotten, b.forgotten, c.forgotten], [["k"], ["k"], ["k"]]);
  });

  it("needs at least one limiter", () => {
    assert.throws(() => maxOfRateLimiter(), /at least one limiter/);
  });
});

describe("defaultControllerRateLimiter", () => {
  it("backs off per key from 5 ms until the overall bucket (10 qps, burst 100) dominates", () => {
    const clock = manualClock();
    const limiter = defaultControllerRateLimiter<string>({ clock });
    assert.deepEqual(whenTimes(limiter, "a", 4), [5, 10, 20, 40]);
    assert.equal(limiter.numRequeues("a"), 4);
    for (let i = 0; i < 96; i++) assert.equal(limiter.when(`key-${i}`), 5);
    // The bucket's 100 tokens are gone: a fresh key now waits for the bucket, not its backoff.
    assert.equal(limiter.when("fresh"), 100);
    limiter.forget("a");
    assert.equal(limiter.numRequeues("a"), 0);
  });

  it("caps the per-key backoff at 1000 s", () => {
    const limiter = defaultControllerRateLimiter<string>({ clock: manualClock() });
    assert.equal(whenTimes(limiter, "a", 40).at(-1), 1_000_000);
  });
});

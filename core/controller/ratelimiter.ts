/**
 * Rate limiters for the work queue: client-go's `default_rate_limiters.go` in TypeScript.
 *
 * Guarantees:
 * - Every limiter has the same shape, so they combine with `maxOfRateLimiter`.
 * - `when(key)` records a failure (exponential) or reserves a token (bucket); the caller is expected to
 *   wait the returned number of milliseconds before handling the key again.
 * - `forget(key)` ends the backoff of a key; the bucket is overall and ignores it, as upstream does.
 * Assumptions: keys are compared with `Map` semantics (strings in practice); `clock.now()` never goes
 * backwards (the default is the monotonic `performance.now()`).
 */

/** A source of time in milliseconds; injectable so tests control it. */
export interface Clock {
  now(): number;
}

/** The default clock: monotonic, unaffected by changes to the wall clock. */
export const monotonicClock: Clock = { now: () => performance.now() };

/** Decides how long a key waits before it is retried (client-go `TypedRateLimiter`). */
export interface RateLimiter<K> {
  /** Records one more failure of `key` and returns the delay in milliseconds before its retry. */
  when(key: K): number;
  /** Stops tracking `key`: its next failure starts from the shortest delay again. */
  forget(key: K): void;
  /** How many times `key` has failed since it was last forgotten. */
  numRequeues(key: K): number;
}

/** Options shared by the limiters that read the time. */
export interface RateLimiterOptions {
  /** Defaults to `monotonicClock`. */
  clock?: Clock;
}

function requireNumber(name: string, value: number, min: number, range: string, integer = false): void {
  if (Number.isNaN(value) || value < min || (integer && !Number.isInteger(value))) {
    throw new RangeError(`${name} must be ${range}, got ${value}`);
  }
}

/**
 * Per-key exponential backoff: `baseMs * 2^failures`, capped at `maxMs`
 * (client-go `ItemExponentialFailureRateLimiter`). Defaults: 5 ms .. 1000 s.
 */
export function exponentialFailureRateLimiter<K>(baseMs = 5, maxMs = 1_000_000): RateLimiter<K> {
  requireNumber("baseMs", baseMs, 0, "a number >= 0");
  requireNumber("maxMs", maxMs, baseMs, `a number >= baseMs (${baseMs})`);
  const failures = new Map<K, number>();
  return {
    when(key) {
      const exp = failures.get(key) ?? 0;
      failures.set(key, exp + 1);
      // 2 ** exp becomes Infinity long before exp overflows; Math.min caps both.
      return Math.min(baseMs * 2 ** exp, maxMs);
    },
    forget(key) {
      failures.delete(key);
    },
    numRequeues(key) {
      return failures.get(key) ?? 0;
    },
  };
}

/**
 * An overall token bucket of `qps` tokens per second holding at most `burst` tokens, starting full
 * (client-go `BucketRateLimiter` over `rate.NewLimiter(qps, burst)`). `when` reserves a token and returns
 * the delay until it is available, like `Reserve().Delay()`; the bucket is shared by all keys, so
 * `forget` does nothing and `numRequeues` is always 0.
 */
export function bucketRateLimiter<K>(qps: number, burst: number, options: RateLimiterOptions = {}): RateLimiter<K> {
  requireNumber("qps", qps, Number.MIN_VALUE, "a number > 0 (Infinity for no limit)");
  requireNumber("burst", burst, 1, "an integer >= 1", true);
  const clock = options.clock ?? monotonicClock;
  let tokens = burst;
  let last: number | undefined;
  return {
    when() {
      if (qps === Number.POSITIVE_INFINITY) return 0;
      const now = clock.now();
      const elapsed = last === undefined ? 0 : Math.max(0, now - last);
      tokens = Math.min(burst, tokens + (elapsed * qps) / 1000) - 1;
      last = now;
      // A negative balance is a debt: the reserved token arrives once the bucket refills it.
      return tokens < 0 ? (-tokens / qps) * 1000 : 0;
    },
    forget() {},
    numRequeues() {
      return 0;
    },
  };
}

/**
 * Combines limiters: `when` asks every one (each records its own state) and returns the longest delay;
 * `forget` forgets in all of them; `numRequeues` is the largest count (client-go `MaxOfRateLimiter`).
 */
export function maxOfRateLimiter<K>(...limiters: RateLimiter<K>[]): RateLimiter<K> {
  if (limiters.length === 0) throw new RangeError("maxOfRateLimiter needs at least one limiter, got none");
  return {
    when(key) {
      let delay = 0;
      for (const limiter of limiters) delay = Math.max(delay, limiter.when(key));
      return delay;
    },
    forget(key) {
      for (const limiter of limiters) limiter.forget(key);
    },
    numRequeues(key) {
      let requeues = 0;
      for (const limiter of limiters) requeues = Math.max(requeues, limiter.numRequeues(key));
      return requeues;
    },
  };
}

/**
 * The controllers' default (client-go `DefaultControllerRateLimiter`): per-key exponential backoff from
 * 5 ms to 1000 s, together with an overall bucket of 10 qps and burst 100.
 */
export function defaultControllerRateLimiter<K>(options: RateLimiterOptions = {}): RateLimiter<K> {
  return maxOfRateLimiter<K>(exponentialFailureRateLimiter(5, 1_000_000), bucketRateLimiter(10, 100, options));
}

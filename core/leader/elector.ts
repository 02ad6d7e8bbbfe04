/**
 * Leader election on a coordination.k8s.io/v1 Lease, after client-go's `leaderelection` package.
 *
 * Guarantees: at most one holder acts as leader at a time provided clocks advance at similar rates
 * (the lease is judged expired by the local time since its record last changed, never by comparing
 * clocks). Local observations and deadlines are on the monotonic clock (`performance.now()`, as
 * client-go's observed time), so a step of the wall clock (NTP) neither extends nor cuts a term; only
 * the Lease's own acquireTime and renewTime are wall-clock times. The leader renews every
 * `retryPeriod`; if it cannot renew within `renewDeadline` it calls `onStoppedLeading` and stops. On
 * a clean stop the holder releases the lease (empty holder), so a standby takes over at its next
 * retry instead of waiting for expiry.
 * - Each renewal is aborted at the renew deadline (as client-go's timeout context), so a request
 *   hanging on a dead connection cannot keep a replica leading past it.
 * - {@link LeaderElector.mayWrite} is the write fence: true only while leading and within the renew
 *   deadline of the start of the last successful renewal. A standby can take the lease only after
 *   the lease duration has passed since that renewal, so fenced writes never overlap another
 *   leader's, whatever the lead function's in-flight work does (the margin is lease duration minus
 *   renew deadline, 5 s by default, for request latency and clock rate). Writes still in flight
 *   when a term is lost are abandoned ({@link LeaderElector.termSignal}): a reconcile stuck on an API
 *   server that lost etcd ends then, so the term drains and the next one can begin at once.
 * - A standby watches the Lease (one object, by field selector) instead of polling it: it sees each
 *   renewal as it happens, so it judges expiry from the holder's last renewal rather than up to a
 *   retry period after it (a takeover within the lease duration of the holder's death), and it tries
 *   at once when the holder releases the lease. Without the watch (not synced yet, or broken) it
 *   reads the Lease each retry period as client-go does; any view that is stale only costs a
 *   Conflict, never a second leader (the update carries the resourceVersion it read).
 * Caveats: renewals are writes (one PUT per retry period while leading; a GET only after a conflict).
 */

import { randomUUID } from "node:crypto";
import { hostname } from "node:os";
import { type Lease, LeaseKind } from "../builtin-kinds.ts";
import { Informer } from "../cache/informer.ts";
import type { Client } from "../client/client.ts";
import { isAlreadyExists, isConflict, isNotFound } from "../client/rest.ts";
import type { Logger } from "../logger.ts";
import type { Metrics } from "../metrics/metrics.ts";
import { objectKey } from "../object.ts";
import { sleep } from "../sleep.ts";

/** Lease timings in ms; defaults are controller-runtime's (15 s, 10 s, 2 s). */
export interface LeaseTimings {
  leaseDurationMs: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

/** Settings of an elector. */
export interface LeaderElectorOptions extends LeaseTimings {
  name: string;
  namespace: string;
  identity?: string;
  client: Client;
  logger: Logger;
  metrics: Metrics;
}

/**
 * The lease identity: the pod's name when the chart passes it (POD_NAME, downward API), so a process
 * restarted in the same pod re-acquires its own lease at once instead of waiting for it to expire;
 * elsewhere the host name plus a random suffix (two processes on one host never collide).
 */
export function defaultIdentity(env: NodeJS.ProcessEnv = process.env): string {
  return env.POD_NAME || `${env.HOSTNAME || hostname()}_${randomUUID()}`;
}

/** See the module comment. */
export class LeaderElector {
  readonly identity: string;
  private readonly o: LeaderElectorOptions;
  private readonly log: Logger;
  private observed: Lease | undefined;
  /** When the observed record last changed, by our monotonic clock (performance.now()). */
  private observedAt = 0;
  private leading = false;
  /** When the lease held by another replica expires by our observation (performance.now()); 0 if unknown. */
  private expiresAt = 0;
  /** When the last successful acquire or renewal started (performance.now()). */
  private renewedAt = 0;
  /** The standby's watch of the Lease; set while campaigning. */
  private watch: Informer<Lease> | undefined;
  /** Aborted when the current term is lost (not when it ends cleanly). */
  private term = new AbortController();
  /** Aborted to wake a sleeping campaign (the holder released the lease). */
  private wake = new AbortController();

  constructor(options: LeaderElectorOptions) {
    if (
      !(
        options.leaseDurationMs > options.renewDeadlineMs &&
        options.renewDeadlineMs > options.retryPeriodMs &&
        options.retryPeriodMs > 0
      )
    ) {
      throw new Error(
        `lease timings must satisfy lease-duration > renew-deadline > retry-period > 0 (got ${options.leaseDurationMs} ms, ${options.renewDeadlineMs} ms, ${options.retryPeriodMs} ms)`,
      );
    }
    this.o = options;
    this.identity = options.identity ?? defaultIdentity();
    this.log = options.logger.child({ lease: `${options.namespace}/${options.name}`, identity: this.identity });
    options.metrics.leaderStatus.set({ name: options.name }, 0);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until leading, then calls `lead(leadSignal)`, which runs for as long as leadership
   * lasts: `leadSignal` aborts when the lease is lost or `signal` aborts. Resolves after `lead`
   * resolves and the lease is released (clean stop) or lost. Returns true if leadership was lost.
   */
  async run(signal: AbortSignal, lead: (leadSignal: AbortSignal) => Promise<void>): Promise<boolean> {
    let acquired = false;
    const stopWatch = this.watchLease(signal);
    try {
      while (!signal.aborted) {
        // Bounded like a renewal: an API server that accepts connections but does not answer yet (one
        // starting up) must not hold the campaign, nor hand over a lease already near its deadline.
        acquired = await this.tryAcquireOrRenew(AbortSignal.any([signal, AbortSignal.timeout(this.o.renewDeadlineMs)]));
        if (acquired) break;
        // Retry every retry period, but right when the holder's lease expires if that comes first: a
        // standby then takes over one lease duration after the last renewal it saw, not up to a retry
        // period later; a release seen by the watch wakes it at once.
        if (this.wake.signal.aborted) this.wake = new AbortController();
        const untilExpiry = this.expiresAt - performance.now();
        const retry = this.o.retryPeriodMs * (1 + Math.random() * 0.2);
        await sleep(untilExpiry > 0 ? Math.min(retry, untilExpiry + 10) : retry, AbortSignal.any([signal, this.wake.signal]));
      }
    } finally {
      stopWatch();
    }
    if (signal.aborted) {
      // A stop that lands while the acquire succeeds must not leave the lease held until expiry.
      if (acquired) await this.release();
      return false;
    }
    this.term = new AbortController();
    this.setLeading(true);
    this.log.info("became leader");
    const leadAbort = new AbortController();
    const onAbort = () => leadAbort.abort();
    signal.addEventListener("abort", onAbort, { once: true });
    // Renew until `lead` has finished, also while it drains after a stop: the lease must stay ours
    // for as long as our controllers may still write (controller-runtime does the same).
    const finished = new AbortController();
    const leading = lead(leadAbort.signal).finally(() => finished.abort());
    let lost = false;
    while (!finished.signal.aborted) {
      // Renew every retry period, sooner when the last success is old (an acquire that took long):
      // half the time left to the deadline, so a slow answer cannot end a term that just began.
      const left = this.renewedAt + this.o.renewDeadlineMs - performance.now();
      await sleep(Math.max(0, Math.min(this.o.retryPeriodMs, left / 2)), finished.signal);
      if (finished.signal.aborted) break;
      const deadline = this.renewedAt + this.o.renewDeadlineMs;
      // AbortSignal.timeout takes whole milliseconds (performance.now() has fractions); rounded up, so
      // an attempt it aborts has reached the deadline.
      const attempt = AbortSignal.any([
        finished.signal,
        AbortSignal.timeout(Math.max(1, Math.ceil(deadline - performance.now()))),
      ]);
      if (!(await this.tryAcquireOrRenew(attempt)) && performance.now() >= deadline) {
        lost = true;
        this.log.error("lost the lease (could not renew within the renew deadline)");
        // Not leading from now on (the gauge and the write fence), while `lead` drains; writes in
        // flight are abandoned so the drain does not wait on them.
        this.setLeading(false);
        this.term.abort();
        leadAbort.abort();
        break;
      }
    }
    await leading;
    signal.removeEventListener("abort", onAbort);
    this.setLeading(false);
    if (!lost) await this.release();
    return lost;
  }

  /**
   * Starts the standby's watch of the Lease; returns its stop. Events update the observed record (and
   * its expiry); a release wakes the campaign.
   */
  private watchLease(signal: AbortSignal): () => void {
    const stop = new AbortController();
    const { name, namespace, client, logger } = this.o;
    const informer = new Informer<Lease>(client.rest, LeaseKind, {
      namespace,
      fieldSelector: `metadata.name=${name}`,
      logger,
    });
    const seen = (lease: Lease) => {
      if (this.watch !== informer) return;
      this.observe(lease);
      const spec = lease.spec ?? {};
      if (spec.holderIdentity && spec.holderIdentity !== this.identity) {
        this.expiresAt = this.observedAt + (spec.leaseDurationSeconds ?? this.o.leaseDurationMs / 1000) * 1000;
      } else if (!spec.holderIdentity) {
        this.wake.abort();
      }
    };
    informer.addHandler({ onAdd: seen, onUpdate: (_old, lease) => seen(lease) });
    this.watch = informer;
    void informer.start(AbortSignal.any([signal, stop.signal]));
    return () => {
      if (this.watch === informer) this.watch = undefined;
      stop.abort();
    };
  }

  private setLeading(value: boolean): void {
    this.leading = value;
    this.o.metrics.leaderStatus.set({ name: this.o.name }, value ? 1 : 0);
  }

  private observe(lease: Lease): void {
    const before = this.observed?.spec;
    const after = lease.spec;
    if (!before || before.holderIdentity !== after?.holderIdentity || before.renewTime !== after?.renewTime) {
      this.observedAt = performance.now();
    }
    this.observed = lease;
  }

  /**
   * Aborts when the current (or last) term is lost: the writes then in flight are abandoned. A clean
   * stop does not abort it (in-flight work finishes while the lease is still renewed).
   */
  get termSignal(): AbortSignal {
    return this.term.signal;
  }

  /**
   * The write fence: true while this replica leads and its last successful renewal started less than
   * the renew deadline ago (see the module comment).
   */
  mayWrite(): boolean {
    return this.leading && performance.now() - this.renewedAt < this.o.renewDeadlineMs;
  }

  /** One attempt; true when we hold the lease afterwards. */
  private async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const { client, name, namespace, leaseDurationMs } = this.o;
    // The deadline is measured on the monotonic clock; the Lease records wall-clock MicroTime.
    const startedAt = performance.now();
    const now = new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z");
    const opts = signal ? { signal } : {};
    try {
      let current = this.observed;
      if (!current) {
        current = await client.reader.get(LeaseKind, name, namespace, opts);
        if (!current) {
          const created = await client.create(
            LeaseKind,
            {
              metadata: { name, namespace },
              spec: {
                holderIdentity: this.identity,
                leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
                acquireTime: now,
                renewTime: now,
                leaseTransitions: 0,
              },
            },
            opts,
          );
          this.observe(created);
          this.renewedAt = startedAt;
          return true;
        }
        this.observe(current);
      }
      const spec = current.spec ?? {};
      const held = !!spec.holderIdentity && spec.holderIdentity !== this.identity;
      const durationMs = (spec.leaseDurationSeconds ?? Math.ceil(leaseDurationMs / 1000)) * 1000;
      if (held && performance.now() < this.observedAt + durationMs) {
        // Someone else holds an unexpired lease. The watch keeps our view current; without it, read
        // the record (uncached) so expiry is judged from the latest renewal.
        // A watch that listed before the holder created the Lease may not have delivered it yet: then
        // the record just observed is the latest known, not "no Lease" (that would take a held lease).
        const fresh = this.watch?.hasSynced
          ? (this.watch.store.get(objectKey({ metadata: { name, namespace } })) ?? current)
          : await client.reader.get(LeaseKind, name, namespace, opts);
        if (fresh) this.observe(fresh);
        const fs = fresh?.spec ?? {};
        if (fs.holderIdentity && fs.holderIdentity !== this.identity && performance.now() < this.observedAt + durationMs) {
          this.expiresAt = this.observedAt + (fs.leaseDurationSeconds ?? durationMs / 1000) * 1000;
          return false;
        }
      }
      const latest = this.observed as Lease;
      const ls = latest.spec ?? {};
      const ours = ls.holderIdentity === this.identity;
      const updated = await client.update(
        LeaseKind,
        {
          ...latest,
          spec: {
            ...ls,
            holderIdentity: this.identity,
            leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
            renewTime: now,
            acquireTime: ours ? ls.acquireTime : now,
            leaseTransitions: (ls.leaseTransitions ?? 0) + (ours ? 0 : 1),
          },
        },
        opts,
      );
      this.observe(updated);
      this.renewedAt = startedAt;
      return true;
    } catch (err) {
      if (isConflict(err) || isAlreadyExists(err) || isNotFound(err)) {
        // Our view is stale; read afresh next time.
        this.observed = undefined;
      } else {
        this.log.warn({ err: String(err) }, "lease request failed");
      }
      return false;
    }
  }

  /** Gives the lease up so a standby can take over at once (client-go's ReleaseOnCancel). */
  private async release(): Promise<void> {
    const latest = this.observed;
    if (!latest || latest.spec?.holderIdentity !== this.identity) return;
    try {
      await this.o.client.update(LeaseKind, {
        ...latest,
        spec: {
          ...latest.spec,
          holderIdentity: "",
          leaseDurationSeconds: 1,
          renewTime: new Date().toISOString().replace(/\.(\d{3})Z$/, ".$1000Z"),
        },
      });
      this.log.info("released the lease");
    } catch (err) {
      this.log.warn({ err: String(err) }, "could not release the lease; it will expire");
    }
  }
}

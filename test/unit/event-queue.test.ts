import assert from "node:assert/strict";
import { Writable } from "node:stream";
import { describe, it } from "node:test";
import { EventQueue } from "../../core/events/recorder.ts";
import { createLogger } from "../../core/logger.ts";

/** A logger whose lines are kept, parsed. */
function recordingLogger() {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      lines.push(JSON.parse(chunk.toString("utf8")) as Record<string, unknown>);
      done();
    },
  });
  return { log: createLogger("warn", sink), lines };
}

describe("EventQueue (the recorders' Event writes)", () => {
  it("writes one at a time, in the order queued", async () => {
    const { log } = recordingLogger();
    const queue = new EventQueue(log);
    let inFlight = 0;
    let most = 0;
    const done: number[] = [];
    for (let i = 0; i < 20; i++) {
      queue.push(async () => {
        inFlight++;
        most = Math.max(most, inFlight);
        await new Promise((r) => setImmediate(r));
        done.push(i);
        inFlight--;
      });
    }
    await queue.flush();
    assert.equal(most, 1);
    assert.deepEqual(
      done,
      Array.from({ length: 20 }, (_, i) => i),
    );
  });

  it("drops what comes past its bound, says how many, counts each, and takes new writes once it has room", async () => {
    const { log, lines } = recordingLogger();
    let dropped = 0;
    const queue = new EventQueue(log, { max: 3, onDropped: () => dropped++ });
    let release: () => void = () => undefined;
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const written: string[] = [];
    const job = (name: string) => async () => {
      await gate;
      written.push(name);
    };
    // The first job starts at once (it leaves the queue), three wait, two are dropped.
    const accepted = ["a", "b", "c", "d", "e", "f"].map((n) => queue.push(job(n)));
    assert.deepEqual(accepted, [true, true, true, true, false, false]);
    release();
    await queue.flush();
    assert.deepEqual(written, ["a", "b", "c", "d"]);
    assert.ok(lines.some((l) => /dropping new ones/.test(String(l.msg))));
    assert.ok(lines.some((l) => l.dropped === 2));
    assert.equal(dropped, 2, "each dropped Event is counted (kubeplug_events_dropped_total)");
    assert.equal(queue.push(job("g")), true);
    await queue.flush();
    assert.deepEqual(written, ["a", "b", "c", "d", "g"]);
  });

  it("holds writes while the controllers are busy, writes them once quiet, and at most maxDelayMs late", async () => {
    const { log } = recordingLogger();
    let busy = true;
    let checks = 0;
    const queue = new EventQueue(log, {
      holdWhile: () => {
        checks++;
        return busy;
      },
      quietMs: 50,
      maxDelayMs: 60_000,
      pollMs: 5,
    });
    const written: string[] = [];
    queue.push(async () => {
      written.push("a");
    });
    queue.push(async () => {
      written.push("b");
    });
    // Polled while busy, nothing written: a loaded machine only makes more polls.
    while (checks < 20) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(written, []);
    busy = false;
    while (written.length < 2) await new Promise((r) => setTimeout(r, 5));
    assert.deepEqual(written, ["a", "b"], "in the order queued, once the controllers went quiet");

    // An Event waits at most maxDelayMs, however busy the controllers stay.
    const late = new EventQueue(log, { holdWhile: () => true, quietMs: 50, maxDelayMs: 100, pollMs: 5 });
    const queuedAt = performance.now();
    let writtenAt: number | undefined;
    late.push(async () => {
      writtenAt = performance.now();
    });
    while (writtenAt === undefined) await new Promise((r) => setTimeout(r, 5));
    assert.ok(writtenAt - queuedAt >= 100, `written ${writtenAt - queuedAt} ms after it was queued, not before maxDelayMs`);
  });

  it("writes at once when the controllers are idle, and flush() writes held Events without waiting", async () => {
    const { log } = recordingLogger();
    const idle = new EventQueue(log, { holdWhile: () => false, quietMs: 60_000, maxDelayMs: 60_000 });
    const written: string[] = [];
    idle.push(async () => {
      written.push("idle");
    });
    assert.deepEqual(written, ["idle"], "written synchronously: nothing was ever busy");

    const held = new EventQueue(log, { holdWhile: () => true, quietMs: 60_000, maxDelayMs: 60_000, pollMs: 5 });
    held.push(async () => {
      written.push("held");
    });
    await new Promise((r) => setTimeout(r, 20));
    assert.deepEqual(written, ["idle"]);
    await held.flush();
    assert.deepEqual(written, ["idle", "held"], "flush (shutdown, tests) writes what is held");
  });
});

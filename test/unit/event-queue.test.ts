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

/** Polls `check` every 5 ms; fails after 30 s rather than hanging the run. */
async function until(check: () => boolean): Promise<void> {
  const deadline = performance.now() + 30_000;
  while (!check()) {
    if (performance.now() > deadline) throw new Error("timed out after 30 s");
    await new Promise((r) => setTimeout(r, 5));
  }
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

  it("holds writes while the controllers are busy, then writes them in order once quiet for quietMs", async () => {
    const { log } = recordingLogger();
    let busy = true;
    let checks = 0;
    const queue = new EventQueue(log, {
      holdWhile: () => {
        checks++;
        return busy;
      },
      quietMs: 100,
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
    await until(() => checks >= 20);
    assert.deepEqual(written, []);
    busy = false;
    const quietFrom = performance.now();
    await until(() => written.length === 2);
    assert.deepEqual(written, ["a", "b"], "in the order queued, once the controllers went quiet");
    assert.ok(performance.now() - quietFrom >= 100, "not before quietMs of quiet");
  });

  it("writes an Event held longer than maxDelayMs however busy the controllers stay", async () => {
    const { log } = recordingLogger();
    const late = new EventQueue(log, { holdWhile: () => true, quietMs: 50, maxDelayMs: 100, pollMs: 5 });
    const queuedAt = performance.now();
    let writtenAt: number | undefined;
    late.push(async () => {
      writtenAt = performance.now();
    });
    await until(() => writtenAt !== undefined);
    const waited = (writtenAt as number) - queuedAt;
    assert.ok(waited >= 100, `held ${waited} ms: not written before maxDelayMs`);
  });

  it("stops holding once half its bound is waiting, so a long burst's Events are not dropped", async () => {
    const { log } = recordingLogger();
    let dropped = 0;
    const queue = new EventQueue(log, {
      max: 10,
      onDropped: () => dropped++,
      holdWhile: () => true,
      quietMs: 60_000,
      maxDelayMs: 60_000,
      pollMs: 5,
    });
    const written: number[] = [];
    for (let i = 0; i < 4; i++) queue.push(async () => void written.push(i));
    await new Promise((r) => setTimeout(r, 30));
    assert.equal(written.length, 0, "four of ten: held");
    // The fifth makes half the bound: the backlog goes out, down to under half again.
    queue.push(async () => void written.push(4));
    await until(() => written.length >= 1);
    assert.deepEqual(written, [0], "written down to under half the bound, the rest held again");
    assert.equal(dropped, 0);
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

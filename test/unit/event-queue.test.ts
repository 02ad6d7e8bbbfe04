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
});

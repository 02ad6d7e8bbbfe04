/** Structured JSON logs (pino) with controller, namespace, name and reconcileID fields. */
import { pino } from "pino";

export type Logger = pino.Logger;

/** Log levels accepted by `--log-level`. */
export const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Creates the process logger; writes JSON lines to stderr, leaving stdout to command output. */
export function createLogger(level: LogLevel = "info", destination: NodeJS.WritableStream = process.stderr): Logger {
  return pino({ level, base: undefined, timestamp: pino.stdTimeFunctions.isoTime }, destination);
}

/** A logger that discards everything (tests, libraries used without a manager). */
export function silentLogger(): Logger {
  return pino({ level: "silent" });
}

/**
 * Kubernetes resource quantities (`500m`, `2`, `4Gi`, `1e3`): a zod schema for specs (the same
 * grammar the API server parses) and comparison by value, since the API server stores quantities in
 * canonical form ("0.5" comes back as "500m") and a reconciler comparing spellings would write forever.
 */
import { z } from "zod";

const FORM = /^([+-]?)(\d+(?:\.\d*)?|\.\d+)(?:([KMGTPE]i)|([mkMGTPE])|[eE]([+-]?\d+))?$/;
const DECIMAL: Record<string, number> = { m: -3, "": 0, k: 3, M: 6, G: 9, T: 12, P: 15, E: 18 };
const BINARY: Record<string, number> = { Ki: 1, Mi: 2, Gi: 3, Ti: 4, Pi: 5, Ei: 6 };

const QUANTITY = /^[+]?(\d+(\.\d*)?|\.\d+)(([KMGTPE]i)|[mkMGTPE]|[eE][+-]?\d+)?$/;

/** A zod schema of a non-negative quantity; `what` names it in the error (e.g. "cpu requests"). */
export function quantity(what: string) {
  return z.string().regex(QUANTITY, `${what} must be a Kubernetes quantity such as 500m, 2, 4Gi`);
}

/** The value as an exact fraction: [numerator, power of ten of the denominator]. */
function parse(text: string): [bigint, number] | undefined {
  const m = FORM.exec(text);
  if (!m) return undefined;
  const [int, frac = ""] = (m[2] ?? "").split(".");
  let num = BigInt(`${int || "0"}${frac}`) * (m[1] === "-" ? -1n : 1n);
  let exp10 = -frac.length;
  if (m[3]) num *= 1024n ** BigInt(BINARY[m[3]] as number);
  else if (m[4]) exp10 += DECIMAL[m[4]] as number;
  else if (m[5]) exp10 += Number(m[5]);
  return [num, exp10];
}

/** True when both are quantities of the same value. */
export function sameQuantity(a: string | undefined, b: string | undefined): boolean {
  if (a === b) return true;
  if (a === undefined || b === undefined) return false;
  const [x, y] = [parse(a), parse(b)];
  if (!x || !y) return false;
  const exp = Math.min(x[1], y[1]);
  return x[0] * 10n ** BigInt(x[1] - exp) === y[0] * 10n ** BigInt(y[1] - exp);
}

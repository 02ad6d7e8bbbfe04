/**
 * Manager configuration from flags and environment, validated with zod. Flag names follow
 * Kubebuilder's scaffold (`--metrics-bind-address`, `--health-probe-bind-address`, `--leader-elect`)
 * and kube-controller-manager's lease flags. Every flag can also be set as an environment variable
 * `KUBEPLUG_<FLAG_IN_UPPER_SNAKE_CASE>` (e.g. `KUBEPLUG_LEADER_ELECT=true`); a flag wins over its variable.
 */
import { parseArgs } from "node:util";
import { z } from "zod";
import { LOG_LEVELS } from "../logger.ts";

/** A bad flag or variable: the message names it and what is allowed; the CLI prints it with the usage. */
export class ConfigError extends Error {
  override name = "ConfigError";
}

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Parses a Go-style duration ("15s", "500ms", "1m30s") to milliseconds. */
export function parseDuration(text: string): number {
  const parts = [...text.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join("") !== text)
    throw new Error(`"${text}" is not a duration like 15s, 500ms or 1m30s`);
  return parts.reduce((sum, p) => sum + Number(p[1]) * (UNITS[p[2] as string] as number), 0);
}

const duration = z.string().transform((text, ctx) => {
  try {
    return parseDuration(text);
  } catch (err) {
    ctx.addIssue({ code: "custom", message: (err as Error).message });
    return z.NEVER;
  }
});

/** A listen address: ":8080", "127.0.0.1:8080", or "0" to disable. */
const bindAddress = z.string().transform((text, ctx) => {
  if (text === "0") return undefined;
  const m = /^(.*):(\d{1,5})$/.exec(text);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port > 65535) {
    ctx.addIssue({ code: "custom", message: `"${text}" is not an address like :8080 or 127.0.0.1:8080 (or 0 to disable)` });
    return z.NEVER;
  }
  return { host: m[1] || "0.0.0.0", port };
});

const bool = z.union([z.boolean(), z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1")]);
const list = z.union([z.string(), z.array(z.string())]).transform((v) =>
  (Array.isArray(v) ? v : [v])
    .flatMap((s) => s.split(","))
    .map((s) => s.trim())
    .filter(Boolean),
);

/** What a flag declares: its `ManagerConfig` key, the zod schema of that key, its default (as typed) and help. */
interface FlagSpec {
  readonly key: string;
  readonly schema: z.ZodType;
  readonly default: string | undefined;
  readonly help: string;
  readonly boolean?: true;
  readonly multiple?: true;
}

/**
 * The flag table, each flag declared once: name, config key, schema, default, help. The zod object
 * schema, and so `ManagerConfig`, and the flag <-> key maps are derived from it.
 */
const FLAGS = {
  "metrics-bind-address": {
    key: "metricsBindAddress",
    schema: bindAddress,
    default: ":8080",
    help: "address of /metrics (0 disables)",
  },
  "health-probe-bind-address": {
    key: "healthProbeBindAddress",
    schema: bindAddress,
    default: ":8081",
    help: "address of /healthz and /readyz (0 disables)",
  },
  "leader-elect": {
    key: "leaderElect",
    schema: bool,
    default: "false",
    help: "run controllers only on the replica holding the lease",
    boolean: true,
  },
  "leader-election-id": {
    key: "leaderElectionId",
    schema: z.string().regex(/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/),
    default: "kubeplug-leader",
    help: "name of the Lease",
  },
  "leader-election-namespace": {
    key: "leaderElectionNamespace",
    schema: z.string().optional(),
    default: undefined,
    help: "namespace of the Lease (default: the pod's namespace, else default)",
  },
  "leader-elect-lease-duration": {
    key: "leaseDurationMs",
    schema: duration,
    default: "15s",
    help: "how long a lease is valid without renewal",
  },
  "leader-elect-renew-deadline": {
    key: "renewDeadlineMs",
    schema: duration,
    default: "10s",
    help: "how long the leader retries renewing before giving up",
  },
  "leader-elect-retry-period": { key: "retryPeriodMs", schema: duration, default: "2s", help: "interval between lease attempts" },
  kubeconfig: {
    key: "kubeconfig",
    schema: z.string().optional(),
    default: undefined,
    help: "kubeconfig file (default: in-cluster, then $KUBECONFIG, then ~/.kube/config)",
  },
  namespace: {
    key: "namespaces",
    schema: list.optional().transform((v) => v ?? []),
    default: undefined,
    help: "namespace(s) to watch, comma-separated or repeated (default: all)",
    multiple: true,
  },
  "max-concurrent-reconciles": {
    key: "maxConcurrentReconciles",
    schema: z.coerce.number().int().min(1).max(1000),
    default: "4",
    help: "workers per controller (1..1000)",
  },
  "log-level": { key: "logLevel", schema: z.enum(LOG_LEVELS), default: "info", help: `one of ${LOG_LEVELS.join(", ")}` },
  plugins: {
    key: "plugins",
    schema: list.optional(),
    default: undefined,
    help: "built-in plugins to run, comma-separated (default: all)",
  },
  plugin: {
    key: "pluginSpecifiers",
    schema: list.optional().transform((v) => v ?? []),
    default: undefined,
    help: "also run the plugin a path or an installed package exports by default (repeatable)",
    multiple: true,
  },
  "plugin-failure": {
    key: "pluginFailure",
    schema: z.enum(["fail", "skip"], { error: "must be fail (stop start-up) or skip (run the other plugins)" }),
    default: "fail",
    help: "when a plugin fails to load or set up: fail (default) or skip it and report it",
  },
  "graceful-shutdown-timeout": {
    key: "gracefulShutdownTimeoutMs",
    schema: duration,
    default: "30s",
    help: "how long in-flight reconciles may take on shutdown",
  },
  "webhook-bind-address": {
    key: "webhookBindAddress",
    schema: bindAddress,
    default: ":9443",
    help: "address of the HTTPS admission webhook server (0 disables)",
  },
  "webhook-thread": {
    key: "webhookThread",
    schema: bool,
    default: "true",
    help: "serve admission on a thread of its own, so webhook calls never wait behind reconciles and cache updates (plugins loaded from modules; false: on the main thread)",
    boolean: true,
  },
  "reduce-memory-when-idle": {
    key: "reduceMemoryWhenIdle",
    schema: bool,
    default: "true",
    help: "once a thread goes idle after a busy spell, ask V8 for one memory-reducing collection so RSS falls back from its peak (false: leave it to V8)",
    boolean: true,
  },
  "webhook-cert-dir": {
    key: "webhookCertDir",
    schema: z.string().optional(),
    default: undefined,
    help: "read tls.crt/tls.key from this directory (cert-manager) instead of managing certificates",
  },
  "webhook-service-name": {
    key: "webhookServiceName",
    schema: z.string().min(1),
    default: "kubeplug-webhook",
    help: "Service in front of the webhook server (certificate SANs)",
  },
  "webhook-secret-name": {
    key: "webhookSecretName",
    schema: z.string().min(1),
    default: "kubeplug-webhook-tls",
    help: "Secret holding self-managed certificates",
  },
  "webhook-configuration-name": {
    key: "webhookConfigurationName",
    schema: z.string().min(1),
    default: "kubeplug",
    help: "prefix of the Mutating/ValidatingWebhookConfigurations whose caBundle is kept current",
  },
  "webhook-hosts": {
    key: "webhookHosts",
    schema: list.optional().transform((v) => v ?? []),
    default: undefined,
    help: "extra certificate SANs, e.g. 127.0.0.1,localhost when running on a host",
    multiple: true,
  },
  "webhook-cert-validity": {
    key: "webhookCertValidityMs",
    schema: duration,
    default: "8760h",
    help: "lifetime of self-managed serving certificates",
  },
  "webhook-cert-renew-before": {
    key: "webhookCertRenewBeforeMs",
    schema: duration,
    default: "720h",
    help: "renew self-managed certificates this long before they expire",
  },
  "webhook-ca-validity": {
    key: "webhookCaValidityMs",
    schema: duration,
    default: "87600h",
    help: "lifetime of the self-managed CA; a new one is rotated in twice --webhook-cert-renew-before ahead of its expiry",
  },
} as const satisfies Record<string, FlagSpec>;

type Flags = typeof FLAGS;
type FlagName = keyof Flags;

/** Each flag's schema under its config key. */
type ConfigShape = { [F in FlagName as Flags[F]["key"]]: Flags[F]["schema"] };

const FLAG_ENTRIES = Object.entries(FLAGS) as [FlagName, Flags[FlagName]][];

/** Config key -> flag, for naming the flag in errors. */
const FLAG_OF = new Map<string, FlagName>(FLAG_ENTRIES.map(([flag, f]) => [f.key, flag]));
if (FLAG_OF.size !== FLAG_ENTRIES.length) throw new Error("two manager flags share a config key");

const configSchema = z.object(Object.fromEntries(FLAG_ENTRIES.map(([, f]) => [f.key, f.schema])) as ConfigShape);

/** The validated manager configuration. */
export type ManagerConfig = z.output<typeof configSchema>;

/** Lease timings must nest as client-go requires: lease-duration > renew-deadline > retry-period > 0. */
const checkedConfigSchema = configSchema.superRefine((c, ctx) => {
  if (c.webhookCertRenewBeforeMs >= c.webhookCertValidityMs) {
    ctx.addIssue({ code: "custom", path: ["webhookCertRenewBeforeMs"], message: "must be shorter than --webhook-cert-validity" });
  }
  if (c.webhookCaValidityMs <= 2 * c.webhookCertRenewBeforeMs) {
    ctx.addIssue({
      code: "custom",
      path: ["webhookCaValidityMs"],
      message: "must be longer than twice --webhook-cert-renew-before (a CA is rotated that long before it expires)",
    });
  }
  if (!c.leaderElect) return;
  if (!(c.retryPeriodMs > 0)) {
    ctx.addIssue({ code: "custom", path: ["retryPeriodMs"], message: "must be greater than 0" });
  }
  if (!(c.renewDeadlineMs > c.retryPeriodMs)) {
    ctx.addIssue({ code: "custom", path: ["renewDeadlineMs"], message: "must be longer than --leader-elect-retry-period" });
  }
  if (!(c.leaseDurationMs > c.renewDeadlineMs)) {
    ctx.addIssue({ code: "custom", path: ["leaseDurationMs"], message: "must be longer than --leader-elect-renew-deadline" });
  }
});

/** The environment variable of a flag. */
export const envName = (flag: string) => `KUBEPLUG_${flag.toUpperCase().replace(/-/g, "_")}`;

/** A usage text listing every manager flag with its default. */
export function managerFlagsHelp(): string {
  return Object.entries(FLAGS)
    .map(
      ([name, f]) =>
        `  --${name}${"boolean" in f ? "" : " <value>"}`.padEnd(46) +
        `${f.help}${f.default !== undefined && !("boolean" in f) ? ` (default ${f.default})` : ""}`,
    )
    .join("\n");
}

/**
 * Parses manager flags (and `KUBEPLUG_*` variables). Unknown flags and invalid values throw a
 * {@link ConfigError} naming the flag and what it accepts. Extra, caller-defined flags can be passed
 * through `extra` (parseArgs option specs) and are returned untouched in `rest`.
 */
export function parseManagerConfig(
  argv: readonly string[],
  env: NodeJS.ProcessEnv = process.env,
  extra: Record<string, { type: "string" | "boolean"; multiple?: boolean; short?: string }> = {},
): { config: ManagerConfig; rest: Record<string, unknown>; positionals: string[] } {
  const options: Record<string, { type: "string" | "boolean"; multiple?: boolean }> = { ...extra };
  for (const [name, f] of Object.entries(FLAGS)) {
    options[name] = { type: "boolean" in f ? "boolean" : "string", ...("multiple" in f ? { multiple: true } : {}) };
  }
  // Kubebuilder users write `--leader-elect=true|false`; parseArgs takes booleans bare or negated.
  const booleans = new Set(
    Object.entries(options)
      .filter(([, o]) => o.type === "boolean")
      .map(([n]) => n),
  );
  const args: string[] = [];
  for (const arg of argv) {
    const m = /^--([a-z0-9-]+)=(.*)$/.exec(arg);
    if (!m || !booleans.has(m[1] as string)) {
      args.push(arg);
      continue;
    }
    const [, name, value] = m;
    if (value === "true" || value === "1") args.push(`--${name}`);
    else if (value === "false" || value === "0") args.push(`--no-${name}`);
    else throw new ConfigError(`--${name}: "${value}" is not a boolean; use --${name}, --${name}=true or --${name}=false`);
  }
  let parsed: ReturnType<typeof parseArgs>;
  try {
    parsed = parseArgs({ args, options, strict: true, allowPositionals: true, allowNegative: true });
  } catch (err) {
    throw new ConfigError(`${(err as Error).message.replace(/\. To specify a positional argument.*$/s, "")}`);
  }
  const input: Record<string, unknown> = {};
  const rest: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(parsed.values)) if (name in extra) rest[name] = value;
  for (const [flag, f] of FLAG_ENTRIES) {
    const fromFlag = parsed.values[flag];
    const fromEnv = env[envName(flag)];
    const value = fromFlag ?? (fromEnv !== undefined && fromEnv !== "" ? fromEnv : f.default);
    if (value !== undefined) input[f.key] = value;
  }
  const result = checkedConfigSchema.safeParse(input);
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const flag = FLAG_OF.get(String(issue.path[0])) ?? String(issue.path[0]);
      const f = FLAGS[flag as FlagName];
      return `--${flag}: ${issue.message}${f ? `; ${f.help}` : ""}`;
    });
    throw new ConfigError(problems.join("\n"));
  }
  return { config: result.data, rest, positionals: parsed.positionals };
}

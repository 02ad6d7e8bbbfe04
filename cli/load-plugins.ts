/**
 * Loads plugins written outside this repository by specifier (`kubeplug run --plugin SPEC`): a path
 * (a file, or a package directory whose package.json names its entry) or the name of a package
 * installed where kubeplug runs. The module's default export must be a plugin.
 *
 * Node's own resolution is not used for package names: `import()` and `import.meta.resolve` resolve
 * from this file, not from the user's directory, and `require.resolve` ignores ESM-only exports.
 */
import { existsSync, readFileSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve, sep } from "node:path";
import { pathToFileURL } from "node:url";
import { isPlugin, type Plugin, PluginLoadError, recordPluginModule } from "../core/runtime.ts";

/**
 * The entry file of a package directory: `exports["."]` (import/default), else `main` (its
 * src/index.ts while that is not built, outside node_modules), else index.js or index.ts.
 */
function packageEntry(dir: string, specifier: string): string {
  const manifest = join(dir, "package.json");
  if (existsSync(manifest)) {
    const pkg = JSON.parse(readFileSync(manifest, "utf8")) as { exports?: unknown; main?: string };
    const root =
      typeof pkg.exports === "object" && pkg.exports !== null && "." in pkg.exports
        ? (pkg.exports as Record<string, unknown>)["."]
        : pkg.exports;
    const target =
      typeof root === "string"
        ? root
        : typeof root === "object" && root !== null
          ? ((root as Record<string, unknown>).import ?? (root as Record<string, unknown>).default)
          : undefined;
    const entry = typeof target === "string" ? target : pkg.main;
    if (entry && existsSync(join(dir, entry))) return join(dir, entry);
    // A package being developed: its sources stand in for an entry not built yet (not in node_modules,
    // where Node does not strip types).
    if (entry && !dir.split(sep).includes("node_modules") && existsSync(join(dir, "src/index.ts")))
      return join(dir, "src/index.ts");
    if (entry)
      throw new PluginLoadError(`--plugin ${specifier}: ${join(dir, entry)} does not exist; build the package (npm run build)`);
  }
  for (const name of ["index.js", "index.ts", "src/index.ts"]) if (existsSync(join(dir, name))) return join(dir, name);
  throw new PluginLoadError(
    `--plugin ${specifier}: ${dir} has no entry: set "exports" or "main" in its package.json, or add index.js`,
  );
}

/** Finds an installed package by walking up from `from` through node_modules folders. */
function installedPackage(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, "node_modules", name);
    if (existsSync(join(candidate, "package.json"))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

/** The file a specifier names; see the module comment. */
function resolvePluginFile(specifier: string, cwd: string = process.cwd()): string {
  const isPath = specifier.startsWith(".") || isAbsolute(specifier);
  const target = isPath ? resolve(cwd, specifier) : installedPackage(specifier, cwd);
  if (!target || !existsSync(target)) {
    throw new PluginLoadError(
      isPath
        ? `--plugin ${specifier}: ${resolve(cwd, specifier)} does not exist`
        : `--plugin ${specifier}: no package "${specifier}" is installed in ${cwd} or above (npm install it, or pass a path starting with ./ or /)`,
    );
  }
  const file = statSync(target).isDirectory() ? packageEntry(target, specifier) : target;
  if (file.endsWith(".ts") && file.split(sep).includes("node_modules")) {
    throw new PluginLoadError(
      `--plugin ${specifier}: ${file} is TypeScript inside node_modules, which Node does not strip types from; build the package and point its "exports" at the JavaScript`,
    );
  }
  return file;
}

/** Imports the plugin a specifier names; a PluginLoadError says which specifier and what is wrong. */
export async function loadPlugin(specifier: string, cwd: string = process.cwd()): Promise<Plugin> {
  const file = resolvePluginFile(specifier, cwd);
  const url = pathToFileURL(file).href;
  let mod: { default?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown };
  } catch (err) {
    throw new PluginLoadError(
      `--plugin ${specifier}: importing ${file} failed: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const plugin = mod.default;
  if (!isPlugin(plugin)) {
    const got = plugin === undefined ? "no default export" : `a default export without ${missing(plugin).join(", ")}`;
    throw new PluginLoadError(
      `--plugin ${specifier}: ${file} has ${got}; export default definePlugin({ name, kinds, setup }) from "kubeplug"`,
    );
  }
  // The admission thread loads it again from there (webhooks/thread.ts).
  recordPluginModule(plugin, { url, exportName: "default" });
  return plugin;
}

function missing(value: unknown): string[] {
  const p = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const out: string[] = [];
  if (typeof p.name !== "string") out.push("a string name");
  if (!Array.isArray(p.kinds)) out.push("a kinds array");
  if (typeof p.setup !== "function") out.push("a setup function");
  if (p.rbac !== undefined && !Array.isArray(p.rbac)) out.push("an rbac array");
  return out;
}

/**
 * Loads every specifier; a name already taken (by a built-in or another specifier) is refused. With
 * `onFailure` "skip", a plugin that fails to load is reported in `failed` instead of thrown.
 */
export async function loadPlugins(
  specifiers: readonly string[],
  builtIns: readonly Plugin[],
  onFailure: "fail" | "skip" = "fail",
  cwd?: string,
): Promise<{ loaded: Plugin[]; failed: { name: string; reason: string }[] }> {
  const loaded: Plugin[] = [];
  const failed: { name: string; reason: string }[] = [];
  const taken = new Map(builtIns.map((p) => [p.name, "a built-in plugin"]));
  for (const specifier of specifiers) {
    try {
      const plugin = await loadPlugin(specifier, cwd);
      const owner = taken.get(plugin.name);
      if (owner) throw new PluginLoadError(`--plugin ${specifier}: the plugin name "${plugin.name}" is taken by ${owner}`);
      taken.set(plugin.name, `--plugin ${specifier}`);
      loaded.push(plugin);
    } catch (err) {
      if (onFailure === "fail" || !(err instanceof PluginLoadError)) throw err;
      failed.push({ name: specifier, reason: err.message });
    }
  }
  return { loaded, failed };
}

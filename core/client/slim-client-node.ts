/**
 * Loads client-node without its generated API. kubeplug uses client-node for kubeconfig loading and
 * authentication only (`KubeConfig`, `RequestContext`), but `dist/config.js` imports two names from
 * `dist/gen/index.js`, which evaluates every generated API and model class: about 45 MiB of RSS and
 * 0.5 s at start on a 2-core machine (bench/README.md), before any object is cached. This resolve
 * hook hands that one import a module with just those two names, taken from the files that define
 * them; everything else resolves as usual, so code that imports the whole client-node (a plugin, a
 * test) still gets it, sharing the same module instances.
 *
 * Why a hook rather than our own kubeconfig loader: client-node's loader covers in-cluster config,
 * exec and OIDC plugins, proxies and certificate files, which we would otherwise have to copy; and
 * client-node has no entry point without the generated API. The hook checks the import it replaces
 * and installs nothing if a client-node update changes it (then the full API loads, as before).
 * It must run before anything imports client-node: `cli/main.ts` installs it first, then loads
 * the rest of the command with a dynamic import.
 */
import { readFileSync } from "node:fs";
import { registerHooks } from "node:module";
import { fileURLToPath } from "node:url";

const REPLACED = "./gen/index.js";
const NAMES: Record<string, string> = {
  createConfiguration: "@kubernetes/client-node/dist/gen/configuration.js",
  ServerConfiguration: "@kubernetes/client-node/dist/gen/servers.js",
};

let installed: boolean | undefined;

/** Installs the hook once; returns whether it is active. */
export function slimClientNode(): boolean {
  if (installed !== undefined) return installed;
  installed = false;
  let configUrl: string;
  try {
    configUrl = import.meta.resolve("@kubernetes/client-node/dist/config.js");
    const source = readFileSync(fileURLToPath(configUrl), "utf8");
    // The names config.js takes from the generated API; all must be ones the shim provides.
    const imports = [...source.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"]\.\/gen\/index\.js['"]/g)];
    const names = imports.flatMap((m) =>
      (m[1] ?? "")
        .split(",")
        .map((n) => n.trim())
        .filter(Boolean),
    );
    if (imports.length !== 1 || names.length === 0 || !names.every((n) => n in NAMES)) return false;
  } catch {
    return false;
  }
  const shim = `data:text/javascript,${encodeURIComponent(
    Object.entries(NAMES)
      .map(([name, path]) => `export { ${name} } from ${JSON.stringify(import.meta.resolve(path))};`)
      .join("\n"),
  )}`;
  registerHooks({
    resolve(specifier, context, next) {
      if (specifier === REPLACED && context.parentURL === configUrl) return { url: shim, shortCircuit: true };
      return next(specifier, context);
    },
  });
  installed = true;
  return true;
}

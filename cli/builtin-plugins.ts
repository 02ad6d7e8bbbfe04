/**
 * The built-in plugins, each recorded with the module it comes from: the admission thread loads
 * them again from there (webhooks/thread.ts). Commands take them from here, not plugins/index.ts.
 */
import { extname } from "node:path";
import { fileURLToPath } from "node:url";
import { recordPluginModule } from "../core/runtime.ts";
import { plugins } from "../plugins/index.ts";

// .ts from sources, .js once built, like this module.
const url = new URL(`../plugins/index${extname(fileURLToPath(import.meta.url))}`, import.meta.url).href;
for (const plugin of plugins) recordPluginModule(plugin, { url, exportName: "plugins" });

export { plugins };

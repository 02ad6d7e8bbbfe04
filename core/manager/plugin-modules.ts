/**
 * Where a plugin object was loaded from: a module URL and the export holding it (a plugin, or an
 * array of plugins). A plugin with a known module can be loaded again in another thread (the
 * admission thread runs every plugin's setup there to get its webhooks); one built in memory (a test
 * fixture) cannot, and its webhooks are then served on the main thread.
 */
import type { Plugin } from "../plugin.ts";

/** A module that exports plugins. */
export interface PluginModule {
  /** The module's URL (file: URL). */
  url: string;
  /** The export holding the plugin or an array of plugins: "default", "plugins", ... */
  exportName: string;
}

const modules = new WeakMap<Plugin, PluginModule>();

/** Records that `plugin` is the export `exportName` of `url` (or an element of that array export). */
export function recordPluginModule(plugin: Plugin, module: PluginModule): void {
  modules.set(plugin, module);
}

/** The module `plugin` was loaded from, when recorded. */
export function pluginModuleOf(plugin: Plugin): PluginModule | undefined {
  return modules.get(plugin);
}

/**
 * Exactly one copy of kubeplug per process. A plugin that resolves its own copy (a dependency rather
 * than a peerDependency) would get its own TerminalError, ApiError and kinds, so `instanceof` checks
 * between the manager and the plugin would silently fail; loading a second copy is refused instead,
 * with both locations named.
 */
const KEY = Symbol.for("kubeplug.loadedFrom");

/** Records this copy's location; throws when another copy was loaded first. */
export function claimSingleton(location: string): void {
  const registry = globalThis as { [KEY]?: string };
  const first = registry[KEY];
  if (first !== undefined && first !== location) {
    throw new Error(
      `two copies of kubeplug are loaded: ${first} and ${location}. A plugin must take kubeplug as a peerDependency ` +
        "(npm ls kubeplug shows where the second copy comes from)",
    );
  }
  registry[KEY] = location;
}

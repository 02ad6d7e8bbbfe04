/**
 * The `kubeplug` command's entry. `version` answers without loading anything else (the other
 * commands load the runtime, ~0.5 s). Otherwise it first keeps client-node's generated API from
 * loading (see core/client/slim-client-node.ts; that has to happen before anything imports
 * client-node), then loads the command itself.
 */
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { slimClientNode } from "../core/client/slim-client-node.ts";
import { packageRoot } from "./paths.ts";

const args = process.argv.slice(2);
if (args.length === 1 && (args[0] === "version" || args[0] === "--version")) {
  const { version } = JSON.parse(readFileSync(join(packageRoot, "package.json"), "utf8")) as { version: string };
  process.stdout.write(`kubeplug ${version} (node ${process.versions.node})\n`);
} else {
  slimClientNode();
  const { main } = await import("./commands.ts");
  process.exitCode = await main(args);
}

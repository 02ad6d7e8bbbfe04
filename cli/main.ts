/**
 * The `kubeplug` command's entry. It first keeps client-node's generated API from loading (see
 * core/client/slim-client-node.ts; that has to happen before anything imports client-node), then
 * loads the command itself.
 */
import { slimClientNode } from "../core/client/slim-client-node.ts";

slimClientNode();
const { main } = await import("./commands.ts");
process.exitCode = await main(process.argv.slice(2));

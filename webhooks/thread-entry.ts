/**
 * The admission thread's entry (see thread.ts): client-node's generated API is left out here too,
 * which must happen before anything imports client-node, so the rest loads after it.
 */
import { slimClientNode } from "../core/client/slim-client-node.ts";

slimClientNode();
const { serveAdmission } = await import("./thread-worker.ts");
await serveAdmission();

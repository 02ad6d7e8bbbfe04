/**
 * The composition root's one way to build a manager: the container, the webhook registry and
 * server (added before the plugins' setup so their `ctx.webhooks()` declarations have a home), then
 * every selected plugin's setup. `kubeplug run`, the demo and the tests all build it here.
 */
import { type ContainerOptions, createManager, type Manager } from "../core/runtime.ts";
import { addWebhooks, type Webhooks } from "../webhooks/index.ts";

/** A manager ready to start, with its webhooks. */
export interface ComposedManager {
  manager: Manager;
  webhooks: Webhooks;
}

/** See the module comment. */
export async function buildManager(options: Omit<ContainerOptions, "beforeSetup">): Promise<ComposedManager> {
  let webhooks: Webhooks | undefined;
  const { manager } = await createManager({
    ...options,
    beforeSetup: (m) => {
      webhooks = addWebhooks(m);
    },
  });
  if (!webhooks) throw new Error("the webhook registry was not added before the plugins' setup");
  return { manager, webhooks };
}

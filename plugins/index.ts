/** Every plugin this build of kubeplug ships; `--plugins` selects among them. */
import type { Plugin } from "../core/index.ts";
import { tenantPlugin } from "./tenant/index.ts";
import { webAppPlugin } from "./webapp/index.ts";

export const plugins: readonly Plugin[] = [webAppPlugin, tenantPlugin];

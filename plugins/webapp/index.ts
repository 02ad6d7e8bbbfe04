/** The WebApp plugin: a WebApp becomes a Deployment and a Service, kept that way. */
import { DeploymentKind, definePlugin, generationChanged, ServiceKind } from "../../core/index.ts";
import { WEBHOOKS } from "../../webhooks/index.ts";
import { WebAppKind } from "./api.ts";
import { reconcileWebApp } from "./reconciler.ts";
import { validateWebApp } from "./webhooks.ts";

export { type WebApp, WebAppKind } from "./api.ts";

export const webAppPlugin = definePlugin({
  name: "webapp",
  kinds: [WebAppKind],
  rbac: [
    { apiGroups: ["webapp.example.com"], resources: ["webapps"], verbs: ["get", "list", "watch", "update", "patch"] },
    { apiGroups: ["webapp.example.com"], resources: ["webapps/status"], verbs: ["get", "update", "patch"] },
    { apiGroups: ["webapp.example.com"], resources: ["webapps/finalizers"], verbs: ["update"] },
    { apiGroups: ["apps"], resources: ["deployments"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    { apiGroups: [""], resources: ["services"], verbs: ["get", "list", "watch", "create", "update", "patch", "delete"] },
    { apiGroups: [""], resources: ["pods"], verbs: ["get", "list"] },
    { apiGroups: [""], resources: ["events"], verbs: ["create", "patch"] },
  ],
  setup(ctx) {
    ctx
      .controller("webapp")
      .for(WebAppKind, { predicates: [generationChanged()] })
      .owns(DeploymentKind)
      .owns(ServiceKind)
      .reconcile(reconcileWebApp);
    ctx.extension(WEBHOOKS).defaulter(WebAppKind).validator(WebAppKind, validateWebApp);
  },
});

export default webAppPlugin;

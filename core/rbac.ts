/**
 * RBAC derived from what a plugin's code declares, as Kubebuilder's markers would say it by hand:
 * - `for(kind)`: get/list/watch/update/patch on it, get/update/patch on its status, update on its
 *   finalizers (the finalizer step and status writes need them);
 * - `owns(kind)`: get/list/watch/create/update/patch/delete;
 * - `watches(kind)`: get/list/watch;
 * - Events: create/patch (every controller records them);
 * - plus the plugin's own `rbac`, for what code cannot show (uncached reads, `bind`).
 * Rules on the same resource merge their verbs; a kind's own scope says whether its rules need a
 * cluster-wide binding.
 */
import { EventKind } from "./builtin-kinds.ts";
import type { ControllerSpec } from "./controller/builder.ts";
import type { Kind } from "./kinds.ts";
import type { Permission, Plugin, PolicyRule, Verb } from "./plugin.ts";

const READ: readonly Verb[] = ["get", "list", "watch"];
const WRITE: readonly Verb[] = ["create", "update", "patch", "delete"];
const VERB_ORDER: readonly Verb[] = [...READ, ...WRITE, "deletecollection", "bind", "escalate", "impersonate"];

/** The rules the controllers' declarations need; see the module comment. */
function derivedRules(controllers: readonly ControllerSpec[]): Permission[] {
  const rules: Permission[] = [];
  for (const controller of controllers) {
    for (const { role, kind } of controller.sources) {
      if (role === "for") {
        rules.push(
          { kind, verbs: [...READ, "update", "patch"] },
          { kind, subresource: "status", verbs: ["get", "update", "patch"] },
          { kind, subresource: "finalizers", verbs: ["update"] },
        );
      } else {
        rules.push({ kind, verbs: role === "owns" ? [...READ, ...WRITE] : READ });
      }
    }
  }
  return rules;
}

const resourceOf = (rule: Permission) => (rule.subresource ? `${rule.kind.plural}/${rule.subresource}` : rule.kind.plural);

/**
 * A plugin's ClusterRole rules, split by scope: those on namespaced resources (bound per watched
 * namespace when the chart limits them) and those on cluster-scoped ones (always bound cluster-wide).
 */
export function rulesOf(
  plugin: Plugin,
  controllers: readonly ControllerSpec[],
): { namespaced: PolicyRule[]; clusterWide: PolicyRule[] } {
  const all: Permission[] = [...derivedRules(controllers), ...(plugin.rbac ?? [])];
  if (controllers.length > 0) all.push({ kind: EventKind as Kind, verbs: ["create", "patch"] });
  const merged = new Map<string, { rule: Permission; verbs: Set<Verb> }>();
  for (const rule of all) {
    const key = `${rule.kind.group}|${resourceOf(rule)}|${(rule.resourceNames ?? []).join(",")}`;
    const entry = merged.get(key);
    if (entry) for (const verb of rule.verbs) entry.verbs.add(verb);
    else merged.set(key, { rule, verbs: new Set(rule.verbs) });
  }
  const namespaced: PolicyRule[] = [];
  const clusterWide: PolicyRule[] = [];
  for (const { rule, verbs } of merged.values()) {
    const policy: PolicyRule = {
      apiGroups: [rule.kind.group],
      resources: [resourceOf(rule)],
      verbs: VERB_ORDER.filter((v) => verbs.has(v)),
      ...(rule.resourceNames?.length ? { resourceNames: [...rule.resourceNames] } : {}),
    };
    (rule.kind.namespaced ? namespaced : clusterWide).push(policy);
  }
  return { namespaced, clusterWide };
}

/** Built-in Kubernetes kinds that plugins commonly own or watch, typed from client-node's models. */
import type {
  CoreV1Event,
  V1ClusterRole,
  V1ConfigMap,
  V1CustomResourceDefinition,
  V1Deployment,
  V1Lease,
  V1Namespace,
  V1Pod,
  V1ResourceQuota,
  V1RoleBinding,
  V1Secret,
  V1Service,
  V1ServiceAccount,
} from "@kubernetes/client-node";
import { type Kind, kindOf } from "./kinds.ts";
import type { KubeObject, ObjectMeta, Wire } from "./object.ts";

type Obj<T> = Omit<Wire<T>, "metadata"> & { metadata: ObjectMeta } & KubeObject;

export type Deployment = Obj<V1Deployment>;
export type Service = Obj<V1Service>;
export type Pod = Obj<V1Pod>;
export type ConfigMap = Obj<V1ConfigMap>;
export type Secret = Obj<V1Secret>;
export type Namespace = Obj<V1Namespace>;
export type ServiceAccount = Obj<V1ServiceAccount>;
export type ResourceQuota = Obj<V1ResourceQuota>;
export type RoleBinding = Obj<V1RoleBinding>;
export type Lease = Obj<V1Lease>;
export type Event = Obj<CoreV1Event>;
export type ClusterRole = Obj<V1ClusterRole>;
export type CustomResourceDefinition = Obj<V1CustomResourceDefinition>;

export const DeploymentKind: Kind<Deployment, true> = kindOf({
  group: "apps",
  version: "v1",
  kind: "Deployment",
  plural: "deployments",
  namespaced: true,
});
export const ServiceKind: Kind<Service, true> = kindOf({
  group: "",
  version: "v1",
  kind: "Service",
  plural: "services",
  namespaced: true,
});
export const PodKind: Kind<Pod, true> = kindOf({ group: "", version: "v1", kind: "Pod", plural: "pods", namespaced: true });
export const ConfigMapKind: Kind<ConfigMap, true> = kindOf({
  group: "",
  version: "v1",
  kind: "ConfigMap",
  plural: "configmaps",
  namespaced: true,
});
export const SecretKind: Kind<Secret, true> = kindOf({
  group: "",
  version: "v1",
  kind: "Secret",
  plural: "secrets",
  namespaced: true,
});
export const NamespaceKind: Kind<Namespace, false> = kindOf({
  group: "",
  version: "v1",
  kind: "Namespace",
  plural: "namespaces",
  namespaced: false,
});
export const ServiceAccountKind: Kind<ServiceAccount, true> = kindOf({
  group: "",
  version: "v1",
  kind: "ServiceAccount",
  plural: "serviceaccounts",
  namespaced: true,
});
export const ResourceQuotaKind: Kind<ResourceQuota, true> = kindOf({
  group: "",
  version: "v1",
  kind: "ResourceQuota",
  plural: "resourcequotas",
  namespaced: true,
});
export const RoleBindingKind: Kind<RoleBinding, true> = kindOf({
  group: "rbac.authorization.k8s.io",
  version: "v1",
  kind: "RoleBinding",
  plural: "rolebindings",
  namespaced: true,
});
export const LeaseKind: Kind<Lease, true> = kindOf({
  group: "coordination.k8s.io",
  version: "v1",
  kind: "Lease",
  plural: "leases",
  namespaced: true,
});
export const EventKind: Kind<Event, true> = kindOf({
  group: "",
  version: "v1",
  kind: "Event",
  plural: "events",
  namespaced: true,
});
export const ClusterRoleKind: Kind<ClusterRole, false> = kindOf({
  group: "rbac.authorization.k8s.io",
  version: "v1",
  kind: "ClusterRole",
  plural: "clusterroles",
  namespaced: false,
});
export const CustomResourceDefinitionKind: Kind<CustomResourceDefinition, false> = kindOf({
  group: "apiextensions.k8s.io",
  version: "v1",
  kind: "CustomResourceDefinition",
  plural: "customresourcedefinitions",
  namespaced: false,
});
/** The parts of a webhook configuration kubeplug reads and writes. */
export interface WebhookConfiguration extends KubeObject {
  webhooks?: { name: string; clientConfig?: { caBundle?: string } }[];
}
export const MutatingWebhookConfigurationKind: Kind<WebhookConfiguration, false> = kindOf({
  group: "admissionregistration.k8s.io",
  version: "v1",
  kind: "MutatingWebhookConfiguration",
  plural: "mutatingwebhookconfigurations",
  namespaced: false,
});
export const ValidatingWebhookConfigurationKind: Kind<WebhookConfiguration, false> = kindOf({
  group: "admissionregistration.k8s.io",
  version: "v1",
  kind: "ValidatingWebhookConfiguration",
  plural: "validatingwebhookconfigurations",
  namespaced: false,
});

/**
 * Built-in Kubernetes kinds for plugins, one name each for the kind and its object type:
 * `.owns(k8s.Deployment)` and `(d: k8s.Deployment) => ...`.
 */
import * as b from "./builtin-kinds.ts";

export const ConfigMap = b.ConfigMapKind;
export type ConfigMap = b.ConfigMap;
export const ClusterRole = b.ClusterRoleKind;
export type ClusterRole = b.ClusterRole;
export const Deployment = b.DeploymentKind;
export type Deployment = b.Deployment;
export const Event = b.EventKind;
export type Event = b.Event;
export const Lease = b.LeaseKind;
export type Lease = b.Lease;
export const Namespace = b.NamespaceKind;
export type Namespace = b.Namespace;
export const Pod = b.PodKind;
export type Pod = b.Pod;
export const ResourceQuota = b.ResourceQuotaKind;
export type ResourceQuota = b.ResourceQuota;
export const RoleBinding = b.RoleBindingKind;
export type RoleBinding = b.RoleBinding;
export const Secret = b.SecretKind;
export type Secret = b.Secret;
export const Service = b.ServiceKind;
export type Service = b.Service;
export const ServiceAccount = b.ServiceAccountKind;
export type ServiceAccount = b.ServiceAccount;

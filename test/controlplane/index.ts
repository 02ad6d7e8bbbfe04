/** The local control plane harness: binaries, start/stop, and the kubelet stand-in. */
export {
  type ControlPlaneBinaries,
  cacheRoot,
  ensureBinaries,
  ensureTools,
  KUBERNETES_VERSION,
  SetupError,
  type Tools,
} from "./binaries.ts";
export {
  type ControlPlane,
  type ControlPlaneComponent,
  type ControlPlaneOptions,
  freePort,
  startControlPlane,
} from "./controlplane.ts";
export { markPodsReady, type PodReadiness, type PodSelector, startPodReadiness } from "./pod-readiness.ts";

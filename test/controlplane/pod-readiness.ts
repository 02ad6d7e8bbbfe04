/**
 * Stands in for kubelets, the way kwok does: there is no kubelet on a local control plane, so pods
 * stay Pending. This marks pods Running and Ready through the status subresource, which is what the
 * ReplicaSet controller reads to count a Deployment's available replicas.
 */
import { CoreV1Api, type KubeConfig, type V1Pod, Watch } from "@kubernetes/client-node";

/** Which pods to mark: a namespace (default all) and a label selector (default all). */
export interface PodSelector {
  namespace?: string;
  labelSelector?: string;
}

function isReady(pod: V1Pod): boolean {
  return pod.status?.phase === "Running" && !!pod.status.conditions?.some((c) => c.type === "Ready" && c.status === "True");
}

function readyStatus(pod: V1Pod, ip: number): V1Pod["status"] {
  const now = new Date();
  const condition = (type: string) => ({ type, status: "True", lastTransitionTime: now, lastProbeTime: undefined });
  return {
    ...pod.status,
    phase: "Running",
    hostIP: "127.0.0.1",
    podIP: `10.244.${(ip >> 8) & 255}.${ip & 255}`,
    startTime: now,
    conditions: ["PodScheduled", "Initialized", "ContainersReady", "Ready"].map(condition),
    containerStatuses: (pod.spec?.containers ?? []).map((c) => ({
      name: c.name,
      image: c.image ?? "",
      imageID: `docker-pullable://${c.image ?? ""}`,
      ready: true,
      started: true,
      restartCount: 0,
      state: { running: { startedAt: now } },
    })),
  };
}

let nextIp = 1;

async function markReady(api: CoreV1Api, pod: V1Pod): Promise<boolean> {
  if (isReady(pod) || pod.metadata?.deletionTimestamp) return false;
  const name = pod.metadata?.name as string;
  const namespace = pod.metadata?.namespace as string;
  let current = pod;
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      await api.replaceNamespacedPodStatus({ name, namespace, body: { ...current, status: readyStatus(current, nextIp++) } });
      return true;
    } catch (err) {
      const code = (err as { code?: number }).code;
      if (code === 404) return false;
      if (code !== 409) throw err;
      current = await api.readNamespacedPod({ name, namespace });
      if (isReady(current)) return false;
    }
  }
  return false;
}

/** Marks the pods that match now; returns how many it changed. */
export async function markPodsReady(kc: KubeConfig, selector: PodSelector = {}): Promise<number> {
  const api = kc.makeApiClient(CoreV1Api);
  const list = selector.namespace
    ? await api.listNamespacedPod({ namespace: selector.namespace, labelSelector: selector.labelSelector })
    : await api.listPodForAllNamespaces({ labelSelector: selector.labelSelector });
  let changed = 0;
  for (const pod of list.items) if (await markReady(api, pod)) changed++;
  return changed;
}

/** A running readiness loop. */
export interface PodReadiness {
  /** Pods marked so far. */
  readonly marked: number;
  stop(): Promise<void>;
}

/**
 * Keeps marking matching pods ready as they appear (list, then watch; restarts when the watch ends).
 */
export function startPodReadiness(kc: KubeConfig, selector: PodSelector = {}): PodReadiness {
  const api = kc.makeApiClient(CoreV1Api);
  const path = selector.namespace ? `/api/v1/namespaces/${selector.namespace}/pods` : "/api/v1/pods";
  let stopped = false;
  let abort: AbortController | undefined;
  let marked = 0;
  let wake: (() => void) | undefined;
  const pending = new Set<Promise<unknown>>();
  const mark = (pod: V1Pod) => {
    const p = markReady(api, pod)
      .then((changed) => {
        if (changed) marked++;
      })
      .catch(() => undefined)
      .finally(() => pending.delete(p));
    pending.add(p);
  };
  const loop = (async () => {
    while (!stopped) {
      try {
        const list = selector.namespace
          ? await api.listNamespacedPod({ namespace: selector.namespace, labelSelector: selector.labelSelector })
          : await api.listPodForAllNamespaces({ labelSelector: selector.labelSelector });
        for (const pod of list.items) mark(pod);
        const ended = new Promise<void>((resolve) => {
          wake = resolve;
        });
        abort = await new Watch(kc).watch(
          path,
          { resourceVersion: list.metadata?.resourceVersion, labelSelector: selector.labelSelector, allowWatchBookmarks: true },
          (type, obj: V1Pod) => {
            if (type === "ADDED" || type === "MODIFIED") mark(obj);
          },
          () => wake?.(),
        );
        await ended;
      } catch {
        if (!stopped) await new Promise((r) => setTimeout(r, 500));
      }
    }
  })();
  return {
    get marked() {
      return marked;
    },
    async stop() {
      stopped = true;
      abort?.abort();
      wake?.();
      await loop;
      await Promise.all(pending);
    },
  };
}

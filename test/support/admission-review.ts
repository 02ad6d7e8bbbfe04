/** AdmissionReview bodies for tests that call a webhook port directly (as the API server would). */

/** A request's `kind` (group, version, kind). */
export interface ReviewKind {
  group: string;
  version: string;
  kind: string;
}

/** A request's `resource` (group, version, resource). */
export interface ReviewResource {
  group: string;
  version: string;
  resource: string;
}

/** Who and what a review is about, besides its uid and spec. */
export interface ReviewOptions {
  /** The WebApp's name and namespace (also the request's). */
  name: string;
  namespace: string;
  /** `request.userInfo.username`. */
  username: string;
  /** `request.kind`; WebApp by default. */
  kind?: ReviewKind;
  /** `request.resource`; by default webapps in the group and version of `kind`. */
  resource?: ReviewResource;
}

export const WEBAPP_KIND: ReviewKind = { group: "webapp.example.com", version: "v1", kind: "WebApp" };
export const WEBAPP_RESOURCE: ReviewResource = { group: "webapp.example.com", version: "v1", resource: "webapps" };

/**
 * An AdmissionReview v1 request for a WebApp CREATE with `spec` (any JSON value, so tests can send a
 * spec that is not an object). The object is always a webapp.example.com/v1 WebApp; `kind` and
 * `resource` only change what the request says it is about.
 */
export function admissionReview(uid: string, spec: unknown, o: ReviewOptions) {
  const kind = o.kind ?? WEBAPP_KIND;
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid,
      kind,
      resource: o.resource ?? { group: kind.group, version: kind.version, resource: "webapps" },
      name: o.name,
      namespace: o.namespace,
      operation: "CREATE",
      userInfo: { username: o.username },
      object: {
        apiVersion: "webapp.example.com/v1",
        kind: "WebApp",
        metadata: { name: o.name, namespace: o.namespace },
        spec,
      },
      oldObject: null,
      dryRun: false,
    },
  };
}

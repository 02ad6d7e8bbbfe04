/** The WebApp API (`webapp.example.com/v1`): this zod schema is the source of the type, the CRD and the webhooks' checks. */
import { z } from "zod";
import { conditionSchema, defineKind, type ObjectOfKind } from "../../core/index.ts";

/**
 * A container image reference: [registry[:port]/]path[:tag][@sha256:digest], as in Docker's
 * distribution/reference grammar (path components lower-case). Written in the subset of regex syntax
 * that both JavaScript and the API server's Go (RE2) accept, since it lands in the CRD too.
 */
export const IMAGE_REFERENCE =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*(?::[0-9]+)?\/)?[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*)*(?::\w[\w.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$/;

const IMAGE_REQUIRED = "image is required: a container image reference such as nginx:1.27 or registry.example.com/team/app:v2";

export const SERVICE_TYPES = ["ClusterIP", "NodePort"] as const;

const between = (what: string, min: number, max: number) => {
  const message = `${what} must be between ${min} and ${max}`;
  return z.number().int().min(min, message).max(max, message);
};

export const webAppSpec = z
  .object({
    image: z
      .string({ error: (issue) => (issue.input === undefined ? IMAGE_REQUIRED : "image must be a string") })
      .min(1, IMAGE_REQUIRED)
      .regex(IMAGE_REFERENCE, "image must be a container image reference such as nginx:1.27 or registry.example.com/team/app:v2")
      .describe("Container image to run, e.g. nginx:1.27 or registry.example.com/team/app:v2."),
    replicas: between("replicas", 1, 10).default(1).describe("Number of pods to run (1..10)."),
    port: between("port", 1, 65535)
      .default(8080)
      .describe("Port the container listens on (1..65535); the Service forwards port 80 to it."),
    serviceType: z
      .enum(SERVICE_TYPES, { error: `serviceType must be one of ${SERVICE_TYPES.join(", ")}` })
      .default("ClusterIP")
      .describe("How the Service is exposed: ClusterIP (inside the cluster) or NodePort (on every node's IP)."),
  })
  .describe("Desired state of the WebApp.");

export const webAppStatus = z
  .object({
    availableReplicas: z.number().int().min(0).optional().describe("Pods of the WebApp that are available."),
    observedGeneration: z.number().int().min(0).optional().describe("The generation of the spec this status describes."),
    conditions: z.array(conditionSchema).optional().describe("Available, Progressing and Degraded (Kubernetes API conventions)."),
  })
  .describe("Observed state of the WebApp.");

export const WebAppKind = defineKind({
  group: "webapp.example.com",
  version: "v1",
  kind: "WebApp",
  shortNames: ["wa"],
  scope: "Namespaced",
  description: "A WebApp runs a container image as a Deployment and exposes it through a Service on port 80.",
  spec: webAppSpec,
  status: webAppStatus,
  printerColumns: [
    { name: "Image", type: "string", jsonPath: ".spec.image", description: "Container image" },
    { name: "Replicas", type: "integer", jsonPath: ".spec.replicas", description: "Desired pods" },
    { name: "Available", type: "integer", jsonPath: ".status.availableReplicas", description: "Available pods" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
});

export type WebApp = ObjectOfKind<typeof WebAppKind>;
export type WebAppStatus = z.output<typeof webAppStatus>;

/** The Tenant API (`platform.example.com/v1`, cluster-scoped): one object gives a team a ready namespace. */
import { z } from "zod";
import { conditionSchema, defineKind, type ObjectOfKind, quantity } from "../../core/index.ts";

export const TENANT_LABEL = "platform.example.com/tenant";

export const tenantSpec = z
  .object({
    namespace: z
      .string({ error: (i) => (i.input === undefined ? "namespace is required" : "namespace must be a string") })
      .max(63, "namespace must be at most 63 characters")
      .regex(
        /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/,
        "namespace must be a DNS-1123 label: lower-case letters, digits and '-', starting and ending alphanumeric",
      )
      .describe("The namespace the tenant gets (created and owned by the Tenant; immutable)."),
    owners: z
      .array(
        z.object({
          kind: z.enum(["User", "Group"]).default("User").describe("User or Group."),
          name: z
            .string()
            .min(1, "owner name must not be empty")
            .describe("User or group name as the API server authenticates it."),
        }),
      )
      .min(1, "owners must name at least one user or group")
      .describe("Who gets the built-in admin ClusterRole in the namespace."),
    quota: z
      .object({
        cpu: quantity("cpu requests").optional().describe("Hard limit on cpu requests."),
        memory: quantity("memory requests").optional().describe("Hard limit on memory requests."),
        pods: quantity("pods").optional().describe("Hard limit on pods."),
      })
      .optional()
      .describe("A ResourceQuota for the namespace; omitted: none."),
    labels: z
      .record(
        z
          .string()
          .regex(
            /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/,
            "label keys are [prefix/]name: name at most 63 alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
          ),
        z
          .string()
          .max(63, "label values must be at most 63 characters")
          .regex(
            /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/,
            "label values are alphanumerics, '-', '_' or '.', starting and ending alphanumeric",
          ),
      )
      .optional()
      .describe("Labels for the namespace."),
  })
  .describe("Desired state of the Tenant.");

export const tenantStatus = z
  .object({
    phase: z.enum(["Pending", "Active", "Terminating", "Failed"]).optional().describe("Where the tenant is in its life."),
    observedGeneration: z.number().int().min(0).optional().describe("The generation of the spec this status describes."),
    conditions: z.array(conditionSchema).optional().describe("Ready, and NamespaceDeleting while being deleted."),
  })
  .describe("Observed state of the Tenant.");

export const TenantKind = defineKind({
  group: "platform.example.com",
  version: "v1",
  kind: "Tenant",
  scope: "Cluster",
  description: "A Tenant gives a team a namespace with a quota and admin rights for its owners.",
  spec: tenantSpec,
  status: tenantStatus,
  printerColumns: [
    { name: "Namespace", type: "string", jsonPath: ".spec.namespace" },
    { name: "Phase", type: "string", jsonPath: ".status.phase" },
    { name: "Age", type: "date", jsonPath: ".metadata.creationTimestamp" },
  ],
});

export type Tenant = ObjectOfKind<typeof TenantKind>;

/**
 * WebApp admission: defaults and validation come from the WebApp schema itself (the webhook server
 * applies it); this adds what a schema cannot say, as warnings kubectl shows.
 */
import type { ValidationResult } from "../../webhooks/index.ts";
import type { WebApp } from "./api.ts";

/** Warns about images that make rollouts unpredictable. */
export function validateWebApp(app: WebApp): ValidationResult {
  const image = app.spec?.image ?? "";
  const warnings: string[] = [];
  const lastSegment = image.slice(image.lastIndexOf("/") + 1);
  if (image && !lastSegment.includes(":") && !image.includes("@")) {
    warnings.push(`spec.image "${image}" has no tag: the node pulls ":latest", which changes under you; pin a tag or digest`);
  } else if (lastSegment.endsWith(":latest")) {
    warnings.push(`spec.image "${image}" uses ":latest", which changes under you; pin a tag or digest`);
  }
  return { warnings };
}

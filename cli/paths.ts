/** Where the package root is: cli/.. in a checkout, dist/cli/../.. in the package and the image. */
import { existsSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));

/** The directory holding package.json (and charts/, plugins/*\/samples). */
export const packageRoot =
  [join(here, ".."), join(here, "..", "..")].find((dir) => existsSync(join(dir, "package.json"))) ?? join(here, "..");

/**
 * `npm pack` of kubeplug without touching the checkout's dist/: the build goes to a staging
 * directory with the package's files, so tests that build in the checkout (the image test runs
 * `npm run build` there) can run at the same time.
 */
import { execFile } from "node:child_process";
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);
const root = join(import.meta.dirname, "..", "..");

/** Builds and packs kubeplug into `destination`; resolves with the tarball's path. */
export async function packKubeplug(destination: string): Promise<string> {
  const staging = mkdtempSync(join(tmpdir(), "kubeplug-pack-"));
  try {
    await run(join(root, "node_modules/.bin/tsc"), ["-p", join(root, "tsconfig.build.json"), "--outDir", join(staging, "dist")], {
      cwd: root,
    });
    cpSync(join(root, "test/controlplane/build-kubernetes.sh"), join(staging, "dist/test/controlplane/build-kubernetes.sh"));
    const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { files: string[] };
    for (const entry of ["package.json", ...pkg.files]) {
      if (entry === "dist/") continue;
      if (entry.includes("*")) {
        // plugins/*/samples/: each plugin's samples.
        const [base = "", rest = ""] = entry.split("/*/");
        for (const name of readdirSync(join(root, base))) {
          const from = join(root, base, name, rest);
          if (existsSync(from)) cpSync(from, join(staging, base, name, rest), { recursive: true });
        }
      } else if (existsSync(join(root, entry))) {
        cpSync(join(root, entry), join(staging, entry), { recursive: true });
      }
    }
    const { stdout } = await run("npm", ["pack", "--ignore-scripts", "--silent", "--pack-destination", destination], {
      cwd: staging,
    });
    return join(destination, stdout.trim().split("\n").at(-1) ?? "");
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
}

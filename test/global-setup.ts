/**
 * Runs once before any test file: builds (first run only, with progress) or finds the control-plane
 * binaries and extracts kubectl/helm, so parallel test files never race to build them.
 */
import { ensureBinaries, ensureTools, SetupError } from "./controlplane/index.ts";

export async function globalSetup(): Promise<void> {
  const started = Date.now();
  try {
    await ensureBinaries();
    await ensureTools();
  } catch (err) {
    if (err instanceof SetupError) {
      process.stderr.write(`\nerror: ${err.message}\n`);
      process.exit(1);
    }
    throw err;
  }
  const seconds = ((Date.now() - started) / 1000).toFixed(1);
  process.stderr.write(`[kubeplug test] control-plane binaries, kubectl and helm ready (${seconds} s)\n`);
}

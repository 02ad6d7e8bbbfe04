/** Loading plugins by specifier (`kubeplug run --plugin`): paths, package directories, installed packages, clear refusals. */
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { after, before, describe, it } from "node:test";
import { pathToFileURL } from "node:url";
import { loadPlugin, loadPlugins } from "../../cli/load-plugins.ts";
import { PluginLoadError } from "../../core/runtime.ts";

const core = pathToFileURL(join(import.meta.dirname, "../../core/index.ts")).href;
const pluginSource = (name: string) =>
  `import { definePlugin } from ${JSON.stringify(core)};\nexport default definePlugin({ name: ${JSON.stringify(name)}, kinds: [], setup() {} });\n`;

describe("loading plugins by specifier", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), "kubeplug-load-"));
    writeFileSync(join(dir, "file-plugin.ts"), pluginSource("from-file"));
    mkdirSync(join(dir, "pkg/dist"), { recursive: true });
    writeFileSync(
      join(dir, "pkg/package.json"),
      JSON.stringify({ name: "pkg", type: "module", exports: { ".": { import: "./dist/index.js" } } }),
    );
    writeFileSync(join(dir, "pkg/dist/index.js"), pluginSource("from-dir"));
    mkdirSync(join(dir, "app/node_modules/@team/backup"), { recursive: true });
    writeFileSync(
      join(dir, "app/node_modules/@team/backup/package.json"),
      JSON.stringify({ name: "@team/backup", type: "module", main: "main.js" }),
    );
    writeFileSync(join(dir, "app/node_modules/@team/backup/main.js"), pluginSource("from-package"));
    mkdirSync(join(dir, "app/node_modules/raw-ts"), { recursive: true });
    writeFileSync(join(dir, "app/node_modules/raw-ts/package.json"), JSON.stringify({ name: "raw-ts", main: "index.ts" }));
    writeFileSync(join(dir, "app/node_modules/raw-ts/index.ts"), pluginSource("raw"));
    mkdirSync(join(dir, "unbuilt/src"), { recursive: true });
    writeFileSync(
      join(dir, "unbuilt/package.json"),
      JSON.stringify({ name: "unbuilt", type: "module", main: "./dist/index.js" }),
    );
    writeFileSync(join(dir, "unbuilt/src/index.ts"), pluginSource("from-source"));
    mkdirSync(join(dir, "app/node_modules/unbuilt"), { recursive: true });
    writeFileSync(
      join(dir, "app/node_modules/unbuilt/package.json"),
      JSON.stringify({ name: "unbuilt", main: "./dist/index.js" }),
    );
    writeFileSync(join(dir, "no-default.ts"), "export const x = 1;\n");
    writeFileSync(join(dir, "not-a-plugin.ts"), "export default { name: 'x' };\n");
    writeFileSync(join(dir, "throws.ts"), "throw new Error('boom at import');\n");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("loads a file, a package directory (exports) and an installed package (main), from the working directory", async () => {
    assert.equal((await loadPlugin("./file-plugin.ts", dir)).name, "from-file");
    assert.equal((await loadPlugin(join(dir, "pkg"), "/")).name, "from-dir");
    assert.equal((await loadPlugin("@team/backup", join(dir, "app"))).name, "from-package");
    assert.equal((await loadPlugin("./unbuilt", dir)).name, "from-source", "a package not built yet runs from src/index.ts");
  });

  it("refuses with a message naming the specifier and what is wrong", async () => {
    const refusal = async (specifier: string, cwd: string, pattern: RegExp) => {
      await assert.rejects(loadPlugin(specifier, cwd), (err: unknown) => {
        assert.ok(err instanceof PluginLoadError, String(err));
        assert.match(err.message, pattern);
        assert.ok(err.message.startsWith(`--plugin ${specifier}: `), err.message);
        return true;
      });
    };
    await refusal("./missing", dir, /does not exist/);
    await refusal("not-installed", dir, /no package "not-installed" is installed/);
    await refusal("raw-ts", join(dir, "app"), /TypeScript inside node_modules/);
    await refusal("unbuilt", join(dir, "app"), /dist\/index\.js does not exist; build the package/);
    await refusal("./no-default.ts", dir, /has no default export; export default definePlugin/);
    await refusal("./not-a-plugin.ts", dir, /without a kinds array, a setup function/);
    await refusal("./throws.ts", dir, /importing .* failed: boom at import/);
  });

  it("refuses a name a built-in or another specifier already has", async () => {
    const builtIn = await loadPlugin("./file-plugin.ts", dir);
    await assert.rejects(
      loadPlugins(["./file-plugin.ts"], [builtIn], "fail", dir),
      /the plugin name "from-file" is taken by a built-in plugin/,
    );
    await assert.rejects(
      loadPlugins([join(dir, "pkg"), join(dir, "pkg")], [], "fail", dir),
      /the plugin name "from-dir" is taken by --plugin .*pkg/,
    );
  });

  it("with skip, loads the others and reports the one that failed", async () => {
    const { loaded, failed } = await loadPlugins(["./missing", "./file-plugin.ts"], [], "skip", dir);
    assert.deepEqual(
      loaded.map((p) => p.name),
      ["from-file"],
    );
    assert.equal(failed.length, 1);
    assert.match(failed[0]?.reason ?? "", /--plugin \.\/missing: .* does not exist/);
  });
});

/**
 * The plugin API stays small and is the only thing plugins use: core/index.ts exports at most 40
 * names, plugins/ imports nothing else of kubeplug, and plugins need no casts to read names.
 */
import assert from "node:assert/strict";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative } from "node:path";
import { describe, it } from "node:test";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const root = join(dirname(fileURLToPath(import.meta.url)), "..", "..");

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sources(join(dir, e.name)) : e.name.endsWith(".ts") ? [join(dir, e.name)] : [],
  );
}

describe("the plugin API", () => {
  it("is one entry of at most 40 names", () => {
    const entry = join(root, "core/index.ts");
    const program = ts.createProgram([entry], {
      allowImportingTsExtensions: true,
      noEmit: true,
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
    });
    const checker = program.getTypeChecker();
    const file = program.getSourceFile(entry);
    assert.ok(file);
    const symbol = checker.getSymbolAtLocation(file);
    assert.ok(symbol);
    const names = checker.getExportsOfModule(symbol).map((s) => s.name);
    assert.ok(names.length > 20, `core/index.ts exports ${names.length} names`);
    assert.ok(names.length <= 40, `core/index.ts exports ${names.length} names (at most 40): ${names.join(", ")}`);
    for (const internal of ["Store", "WorkQueue", "RestClient", "TOKENS", "LeaderElector", "Manager", "SharedCache"]) {
      assert.ok(!names.includes(internal), `${internal} is a runtime internal, not plugin API`);
    }
  });

  it("is all plugins import from kubeplug, and they need no casts", () => {
    for (const path of sources(join(root, "plugins"))) {
      const text = readFileSync(path, "utf8");
      const file = relative(root, path);
      const specifiers = [...text.matchAll(/from "([^"]+)"/g)].map((m) => m[1] ?? "");
      for (const spec of specifiers.filter((s) => s.startsWith("../../"))) {
        assert.equal(spec, "../../core/index.ts", `${file} imports ${spec}; plugins import only the plugin API`);
      }
      assert.doesNotMatch(text, / as (string|never)\b/, `${file} casts`);
    }
  });
});

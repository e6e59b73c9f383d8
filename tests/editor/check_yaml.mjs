// Drives the YAML language server (the engine of VS Code's YAML extension) on YAML files that
// name an adapter_dsl schema with the `# yaml-language-server: $schema=...` modeline.
//
//   node check_yaml.mjs PROBES.json
//
// PROBES.json: {"schemas": {uri: path, ...}, "probes": [{"name", "uri", "text"}]}.
// A "|" in a probe's text marks the cursor: that probe asks for completions there. Every probe
// is also validated. Schemas are served from the given files only (never fetched).
// Prints {"name": {"completions": [...], "diagnostics": [...]}} as JSON.
import fs from "node:fs";
import { getLanguageService } from "yaml-language-server";
import { TextDocument } from "vscode-languageserver-textdocument";

const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
const files = spec.schemas;
const service = getLanguageService({
  schemaRequestService: async (uri) => {
    if (uri in files) return fs.readFileSync(files[uri], "utf8");
    throw new Error(`schema not available offline: ${uri}`);
  },
  workspaceContext: { resolveRelativePath: (rel, base) => new URL(rel, base).toString() },
});
service.configure({ validate: true, completion: true, hover: true, schemas: [], yamlVersion: "1.2" });

const out = {};
for (const probe of spec.probes) {
  const cursor = probe.text.indexOf("|");
  const text = cursor >= 0 ? probe.text.slice(0, cursor) + probe.text.slice(cursor + 1) : probe.text;
  const doc = TextDocument.create(probe.uri, "yaml", 1, text);
  const result = { completions: [], diagnostics: [] };
  if (cursor >= 0) {
    const list = await service.doComplete(doc, doc.positionAt(cursor), false);
    result.completions = (list ? list.items : []).map((item) => item.label);
  }
  const diagnostics = await service.doValidation(doc, false);
  result.diagnostics = diagnostics.map((d) => ({
    message: d.message,
    severity: d.severity,
    line: d.range.start.line,
    character: d.range.start.character,
  }));
  out[probe.name] = result;
}
process.stdout.write(JSON.stringify(out, null, 1) + "\n");

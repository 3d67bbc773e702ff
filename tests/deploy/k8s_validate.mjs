// Validates every manifest in deploy/k8s/ against the Kubernetes API schemas, offline, two ways,
// both generated from Kubernetes' OpenAPI document by the kubernetes-models package:
//   1. its JSON-schema validators (ajv): required fields, types, enums, formats such as resource
//      quantities and int-or-string ports;
//   2. its TypeScript interfaces, type-checked by the TypeScript compiler with each document as an
//      object literal: that also rejects fields the API does not have (a typo such as
//      `imagePullPolice`), which the OpenAPI schemas allow and an API server with strict field
//      validation refuses.
// Before the real files it proves both checks live: a copy of the Deployment with an unknown field
// and one with a malformed quantity must each be refused. Then it checks what issue 16 asks of the
// manifests (DaemonSet with the cpufreq hostPath and least privilege, the 3 x 4 CPU x 8 GiB pool
// with probes on /health, Service, PodDisruptionBudget, Prometheus annotations) and runs every
// ConfigMap's ember.conf through `ember config check`.
//
// usage: node k8s_validate.mjs K8S_DIR EMBER_BINARY
import { readFileSync, readdirSync, writeFileSync, mkdtempSync, rmSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { join, dirname } from "node:path";
import { tmpdir } from "node:os";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const [dir, ember] = process.argv.slice(2);
if (!dir || !ember) {
    console.error("usage: node k8s_validate.mjs K8S_DIR EMBER_BINARY");
    process.exit(2);
}

let failures = 0;
const fail = (msg) => {
    console.error(`FAIL: ${msg}`);
    failures++;
};

// apiVersion "apps/v1" -> module "kubernetes-models/apps/v1"; the core group "v1" -> ".../v1".
const modulePath = (apiVersion) => `kubernetes-models/${apiVersion}`;

async function schemaErrors(doc) {
    let mod;
    try {
        mod = await import(modulePath(doc.apiVersion));
    } catch {
        return [`unknown apiVersion ${doc.apiVersion}`];
    }
    const Model = mod[doc.kind];
    if (typeof Model !== "function") return [`unknown kind ${doc.kind} in ${doc.apiVersion}`];
    try {
        new Model(doc).validate();
        return [];
    } catch (e) {
        return [String(e.message)];
    }
}

// Type-checks all documents in one program: a virtual file beside this script (so that
// kubernetes-models resolves from tests/deploy/node_modules) holding one typed constant each.
function typeErrors(docs) {
    const file = join(here, "__k8s_manifests_check.ts");
    const lines = [];
    docs.forEach((d, i) => {
        lines.push(`import type { I${d.doc.kind} as T${i} } from "${modulePath(d.doc.apiVersion)}";`);
    });
    const starts = []; // first line (1-based) of each document's literal
    let source = lines.join("\n") + "\n";
    docs.forEach((d, i) => {
        starts.push(source.split("\n").length);
        source += `export const doc${i}: T${i} = ${JSON.stringify(d.doc, null, 1)};\n`;
    });
    const options = {
        strict: true,
        noEmit: true,
        target: ts.ScriptTarget.ES2022,
        module: ts.ModuleKind.NodeNext,
        moduleResolution: ts.ModuleResolutionKind.NodeNext,
        skipLibCheck: true,
        types: [],
    };
    const host = ts.createCompilerHost(options);
    const getSourceFile = host.getSourceFile.bind(host);
    host.getSourceFile = (name, lang, ...rest) =>
        name === file ? ts.createSourceFile(name, source, lang, true) : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    const readFile = host.readFile.bind(host);
    host.readFile = (name) => (name === file ? source : readFile(name));
    const program = ts.createProgram([file], options, host);
    const diags = ts.getPreEmitDiagnostics(program);
    // Map each diagnostic back to the document whose literal holds it.
    const out = docs.map(() => []);
    for (const d of diags) {
        const text = ts.flattenDiagnosticMessageText(d.messageText, "\n");
        if (!d.file || d.start === undefined) {
            out.forEach((o) => o.push(text));
            continue;
        }
        const line = d.file.getLineAndCharacterOfPosition(d.start).line + 1;
        let idx = starts.findIndex((s, i) => line >= s && (i + 1 === starts.length || line < starts[i + 1]));
        if (idx < 0) idx = 0;
        out[idx].push(text.split("\n").slice(-1)[0]);
    }
    return out;
}

// ---- load every document ----
const docs = [];
for (const name of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const text = readFileSync(join(dir, name), "utf8");
    for (const d of parseAllDocuments(text)) {
        if (d.errors.length) {
            fail(`${name}: YAML: ${d.errors[0].message}`);
            continue;
        }
        const doc = d.toJS();
        if (doc === null) continue;
        docs.push({ name, doc, where: `${name}: ${doc.kind}/${doc.metadata?.name}` });
    }
}
if (docs.length === 0) fail(`no manifests in ${dir}`);

// ---- 0. both validators refuse broken copies (or this test proves nothing) ----
const deployment = docs.find((d) => d.doc.kind === "Deployment");
if (!deployment) {
    fail("no Deployment to derive the self-test from");
} else {
    const typo = structuredClone(deployment.doc);
    typo.spec.template.spec.containers[0].imagePullPolice = "Always";
    const quantity = structuredClone(deployment.doc);
    quantity.spec.template.spec.containers[0].resources.limits.memory = "eight gigs";
    const [typoErrs] = typeErrors([{ doc: typo }]);
    if (!typoErrs.some((e) => e.includes("imagePullPolice")))
        fail("self-test: the type check accepted an unknown field (imagePullPolice)");
    const qErrs = await schemaErrors(quantity);
    if (!qErrs.some((e) => e.includes("memory")))
        fail("self-test: the schema check accepted the quantity 'eight gigs'");
    console.log(`self-test: unknown field refused (${typoErrs[0]?.slice(0, 80)}), bad quantity refused`);
}

// ---- 1 and 2. every document against the schemas and the types ----
const tErrs = typeErrors(docs);
for (const [i, d] of docs.entries()) {
    const errs = [...(await schemaErrors(d.doc)), ...tErrs[i]];
    if (errs.length) errs.forEach((e) => fail(`${d.where}: ${e}`));
    else console.log(`ok: ${d.where}`);
}

// ---- 3. what the issue asks of them ----
const find = (kind, name) => docs.find((d) => d.doc.kind === kind && (!name || d.doc.metadata.name === name))?.doc;
const expect = (cond, msg) => {
    if (!cond) fail(msg);
};
const ds = find("DaemonSet");
expect(ds, "no DaemonSet");
if (ds) {
    const pod = ds.spec.template.spec;
    const c = pod.containers[0];
    const cpu = pod.volumes.find((v) => v.hostPath?.path === "/sys/devices/system/cpu");
    expect(cpu, "DaemonSet: no hostPath volume for /sys/devices/system/cpu");
    expect(cpu && c.volumeMounts.some((m) => m.name === cpu.name && m.mountPath === "/sys/devices/system/cpu"),
        "DaemonSet: /sys/devices/system/cpu not mounted at its own path");
    expect(pod.nodeSelector && Object.keys(pod.nodeSelector).length > 0, "DaemonSet: no nodeSelector");
    expect(pod.tolerations?.length > 0, "DaemonSet: no tolerations");
    expect(!c.securityContext?.privileged, "DaemonSet: privileged");
    expect(c.securityContext?.allowPrivilegeEscalation === false, "DaemonSet: privilege escalation allowed");
    expect(c.securityContext?.readOnlyRootFilesystem === true, "DaemonSet: writable root file system");
    expect(JSON.stringify(c.securityContext?.capabilities?.drop) === '["ALL"]' && !c.securityContext?.capabilities?.add,
        "DaemonSet: capabilities not all dropped");
    expect(!pod.hostNetwork && !pod.hostPID && !pod.hostIPC, "DaemonSet: host namespaces");
    expect(ds.spec.template.metadata.annotations?.["prometheus.io/scrape"] === "true", "DaemonSet: no Prometheus scrape annotation");
}
const dep = find("Deployment");
if (dep) {
    const c = dep.spec.template.spec.containers[0];
    expect(dep.spec.replicas === 3, "Deployment: replicas != 3");
    for (const k of ["requests", "limits"]) {
        expect(c.resources?.[k]?.cpu === "4", `Deployment: ${k}.cpu != 4`);
        expect(c.resources?.[k]?.memory === "8Gi", `Deployment: ${k}.memory != 8Gi`);
    }
    for (const p of ["readinessProbe", "livenessProbe"])
        expect(c[p]?.httpGet?.path === "/health", `Deployment: ${p} not on /health`);
    expect(dep.spec.template.metadata.annotations?.["prometheus.io/path"] === "/metrics", "Deployment: no Prometheus annotations");
    const svc = find("Service");
    expect(svc && Object.entries(svc.spec.selector).every(([k, v]) => dep.spec.template.metadata.labels[k] === v),
        "Service does not select the Deployment's pods");
    const pdb = find("PodDisruptionBudget");
    expect(pdb && Object.entries(pdb.spec.selector.matchLabels).every(([k, v]) => dep.spec.template.metadata.labels[k] === v),
        "PodDisruptionBudget does not select the Deployment's pods");
    expect(pdb && pdb.spec.minAvailable < dep.spec.replicas, "PodDisruptionBudget blocks every drain");
}
// Every ConfigMap a pod mounts exists, and every ember.conf passes `ember config check`.
for (const w of docs.filter((d) => ["DaemonSet", "Deployment"].includes(d.doc.kind))) {
    for (const v of w.doc.spec.template.spec.volumes ?? []) {
        if (v.configMap) expect(find("ConfigMap", v.configMap.name), `${w.where}: ConfigMap ${v.configMap.name} missing`);
    }
}
const scratch = mkdtempSync(join(tmpdir(), "ember-k8s-"));
try {
    for (const d of docs.filter((x) => x.doc.kind === "ConfigMap")) {
        const conf = d.doc.data?.["ember.conf"];
        if (!conf) {
            fail(`${d.where}: no ember.conf key`);
            continue;
        }
        const path = join(scratch, `${d.doc.metadata.name}.conf`);
        writeFileSync(path, conf);
        try {
            execFileSync(ember, ["config", "check", path], { stdio: "pipe" });
            console.log(`ok: ${d.where}: ember config check`);
        } catch (e) {
            fail(`${d.where}: ember config check: ${e.stderr?.toString().trim()}`);
        }
    }
} finally {
    rmSync(scratch, { recursive: true, force: true });
}

if (failures) {
    console.error(`k8s_validate: ${failures} failure(s)`);
    process.exit(1);
}
console.log(`k8s_validate: ${docs.length} manifests valid`);

// Checks deploy/grafana/ember-fleet.json against Grafana's dashboard JSON model and against what a
// running agent really exports:
//   1. the TypeScript compiler type-checks the dashboard as an object literal of @grafana/schema's
//      Dashboard type, and each panel's options and custom field config against that panel
//      plugin's own generated types (timeseries, stat, bargauge, table): unknown keys, wrong types
//      and wrong enum values fail. The types are generated from Grafana's schema (CUE) and ship
//      with Grafana 13 (@grafana/schema on npm).
//   2. every metric name a query uses appears in METRICS, the /metrics text of a running agent;
//      every family the issue asks for (power, energy, tokens, temperature, frequency, policy) is
//      graphed; the panels do not overlap and fit the 24-column grid; ids are unique; every query
//      uses the dashboard's Prometheus data source variable.
// Before the real file it proves the type check live: a copy with a misspelt panel key and one with
// an invalid legend placement must both be refused.
//
// usage: node grafana_validate.mjs DASHBOARD_JSON METRICS_TXT
import { readFileSync } from "node:fs";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";

const here = dirname(fileURLToPath(import.meta.url));
const [dashFile, metricsFile] = process.argv.slice(2);
if (!dashFile || !metricsFile) {
    console.error("usage: node grafana_validate.mjs DASHBOARD_JSON METRICS_TXT");
    process.exit(2);
}
let failures = 0;
const fail = (msg) => {
    console.error(`FAIL: ${msg}`);
    failures++;
};

const PANEL_TYPES = {
    timeseries: ["TimeSeriesPanelCfg", true],
    stat: ["StatPanelCfg", false],
    bargauge: ["BarGaugePanelCfg", false],
    table: ["TablePanelCfg", true],
};

// Type-checks a dashboard in memory (a virtual file beside this script, so that @grafana/schema
// resolves from tests/deploy/node_modules); returns the diagnostics' texts.
function typeErrors(dash) {
    const file = join(here, "__grafana_dashboard_check.ts");
    let src = 'import type { Dashboard } from "@grafana/schema";\n';
    for (const [t, [mod, hasFieldConfig]] of Object.entries(PANEL_TYPES)) {
        const path = `@grafana/schema/dist/esm/raw/composable/${t}/panelcfg/x/${mod}_types.gen`;
        src += `import type { Options as ${t}_Options${hasFieldConfig ? `, FieldConfig as ${t}_FieldConfig` : ""} } from "${path}";\n`;
    }
    // JSON holds enum values as strings; TypeScript's string enums are nominal, so each is
    // replaced by the union of its values (a template literal type), keeping every key and value
    // check. Numeric enums already accept their numbers.
    src += "type Json<T> = T extends string ? `${T}` : T extends (infer U)[] ? Json<U>[] : " +
        "T extends object ? { [K in keyof T]: Json<T[K]> } : T;\n";
    src += `export const dashboard: Json<Dashboard> = ${JSON.stringify(dash, null, 1)};\n`;
    const all = [];
    const walk = (ps) => ps.forEach((p) => (p.type === "row" ? walk(p.panels ?? []) && all.push(p) : all.push(p)));
    walk(dash.panels ?? []);
    all.forEach((p, i) => {
        const t = PANEL_TYPES[p.type];
        if (!t) return;
        src += `export const options${i}: Json<${p.type}_Options> = ${JSON.stringify(p.options ?? {})};\n`;
        if (t[1] && p.fieldConfig?.defaults?.custom)
            src += `export const custom${i}: Json<${p.type}_FieldConfig> = ${JSON.stringify(p.fieldConfig.defaults.custom)};\n`;
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
        name === file ? ts.createSourceFile(name, src, lang, true) : getSourceFile(name, lang, ...rest);
    const fileExists = host.fileExists.bind(host);
    host.fileExists = (name) => name === file || fileExists(name);
    const readFile = host.readFile.bind(host);
    host.readFile = (name) => (name === file ? src : readFile(name));
    const program = ts.createProgram([file], options, host);
    return ts.getPreEmitDiagnostics(program).map((d) => {
        const text = ts.flattenDiagnosticMessageText(d.messageText, " ");
        if (!d.file || d.start === undefined) return text;
        const { line } = d.file.getLineAndCharacterOfPosition(d.start);
        return `line ${line + 1} of the check: ${text}`;
    });
}

const dash = JSON.parse(readFileSync(dashFile, "utf8"));
const metrics = readFileSync(metricsFile, "utf8");

// ---- 0. the type check can fail ----
{
    const typo = structuredClone(dash);
    const p = typo.panels.find((x) => x.type === "timeseries");
    p.gridpos = p.gridPos;
    const badEnum = structuredClone(dash);
    badEnum.panels.find((x) => x.type === "timeseries").options.legend.placement = "middle";
    const e1 = typeErrors(typo), e2 = typeErrors(badEnum);
    if (!e1.some((e) => e.includes("gridpos"))) fail("self-test: a misspelt panel key (gridpos) was accepted");
    if (!e2.some((e) => e.includes("middle"))) fail("self-test: legend placement 'middle' was accepted");
    console.log("self-test: misspelt key and bad enum value refused");
}

// ---- 1. Grafana's dashboard model ----
const errs = typeErrors(dash);
errs.forEach((e) => fail(`schema: ${e}`));
if (!errs.length) console.log("ok: the dashboard and every panel's options match @grafana/schema");

// ---- 2. structure and the agent's real metric names ----
const exported = new Set([...metrics.matchAll(/^# TYPE (\w+) /gm)].map((m) => m[1]));
if (exported.size < 5) fail(`${metricsFile}: fewer than 5 metric families; not an agent's /metrics?`);
const used = new Set();
const panels = [];
const walk = (ps) => ps.forEach((p) => { panels.push(p); walk(p.panels ?? []); });
walk(dash.panels);
const ids = new Set();
const cells = new Set();
for (const p of panels) {
    if (ids.has(p.id)) fail(`panel id ${p.id} used twice`);
    ids.add(p.id);
    const g = p.gridPos;
    if (!g || g.x < 0 || g.w < 1 || g.x + g.w > 24 || g.h < 1) fail(`panel '${p.title}': gridPos outside the 24-column grid`);
    else
        for (let x = g.x; x < g.x + g.w; x++)
            for (let y = g.y; y < g.y + g.h; y++) {
                if (cells.has(`${x},${y}`)) fail(`panel '${p.title}' overlaps another at ${x},${y}`);
                cells.add(`${x},${y}`);
            }
    if (p.type === "row") continue;
    if (!PANEL_TYPES[p.type]) fail(`panel '${p.title}': type ${p.type} is not checked here`);
    if (!p.targets?.length) fail(`panel '${p.title}': no queries`);
    for (const t of p.targets ?? []) {
        if (t.datasource?.uid !== "${datasource}") fail(`panel '${p.title}' ${t.refId}: not on the \${datasource} variable`);
        for (const m of t.expr.matchAll(/\bember_[a-z_]+/g)) {
            // a histogram's series carry _bucket/_sum/_count after the family name
            const family = m[0].replace(/_(bucket|sum|count)$/, "");
            used.add(family);
            if (!exported.has(family)) fail(`panel '${p.title}': ${m[0]} is not in the agent's /metrics`);
        }
    }
}
for (const need of ["ember_power_watts", "ember_energy_joules_total", "ember_tokens_total",
    "ember_tokens_per_second", "ember_temperature_celsius", "ember_cpu_frequency_hertz",
    "ember_governor_policy"]) {
    if (!used.has(need)) fail(`no panel graphs ${need}`);
}
const vars = dash.templating?.list ?? [];
if (!vars.some((v) => v.name === "datasource" && v.type === "datasource" && v.query === "prometheus"))
    fail("no Prometheus data source variable");
console.log(`metrics used: ${[...used].sort().join(", ")}`);

if (failures) {
    console.error(`grafana_validate: ${failures} failure(s)`);
    process.exit(1);
}
console.log(`grafana_validate: ${panels.length} panels valid`);

//! `plumb check`: every problem of `LlmRoute` files, each at its place in the file.
//!
//! Each document goes through what a cluster and a standalone sidecar run, in order:
//!
//! 1. YAML (the same parser the loader uses), `apiVersion`, `kind`, `metadata.name`;
//! 2. the CRD's schema and CEL rules, as the API server checks them ([`crate::schema`]);
//! 3. `plumb_policy::compile_with`, the compiler the sidecar and the operator run — with schema
//!    files relative to the routes file as `plumb-sidecar --routes` reads them
//!    ([`Mode::Standalone`]), or with ConfigMap schemas from the cluster as the operator
//!    resolves them ([`Mode::Cluster`]);
//! 4. the routes of each namespace together (`RouteSet`): one route per model name;
//! 5. standalone, the sidecar's own loader on each whole file, so nothing it would refuse
//!    passes.
//!
//! The compiler stops at a route's first mistake, so a route shows at most one compiler
//! problem at a time; the schema and the rules report every one. With `--cluster`,
//! [`secret_refs`] and [`config_map_refs`] list what the routes name, for [`crate::cluster`]
//! to look up. What each problem says and how to fix it is worded in `advice`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use plumb_api::LlmRouteSpec;
use plumb_policy::contract::Sources;
use plumb_policy::{InvalidRoute, Route, RouteId, RouteSet};
use serde::Serialize;
use serde_json::Value;

use crate::locate::{self, Position};
use crate::render::{Output, Style, structured};
use crate::schema;

mod advice;

use advice::schema_fix;
pub use advice::{field_of, fix_of, message_of};

/// How routes are compiled: as `plumb-sidecar --routes` does, or as the operator does.
#[derive(Clone, Debug, Default)]
pub enum Mode {
    /// Standalone: documents without a namespace are in `default`, schema files are read
    /// beside the routes file, ConfigMaps cannot be resolved, and each whole file must also
    /// pass the sidecar's loader.
    #[default]
    Standalone,
    /// In a cluster (`--cluster`): documents without a namespace are in `namespace`, schema
    /// files are refused, and ConfigMap schemas come from `config_maps` (by namespace, then
    /// `(name, key)`), as the operator resolves them.
    Cluster {
        /// The namespace of documents that name none.
        namespace: String,
        /// The ConfigMap texts the routes refer to.
        config_maps: HashMap<String, HashMap<(String, String), String>>,
    },
}

/// Which check found a problem.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum Stage {
    /// Not YAML, or not an `LlmRoute` document.
    Yaml,
    /// The CRD's OpenAPI schema (the API server refuses it).
    Schema,
    /// A CEL rule of the CRD (the API server refuses it).
    Rule,
    /// The policy compiler (the operator sets `Accepted=False`; a sidecar refuses the file).
    Policy,
    /// The cluster (a named Secret missing or not labelled for Plumb).
    Cluster,
}

/// One problem, where it is and how to fix it.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    /// The file.
    pub file: String,
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
    /// The field (`spec.targets[0].baseUrl`).
    pub field: String,
    /// What is wrong.
    pub message: String,
    /// How to fix it.
    pub fix: String,
    /// Which check found it.
    pub stage: Stage,
}

/// One document of a file.
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DocumentReport {
    /// The file.
    pub file: String,
    /// Position in the file, from 0.
    pub index: usize,
    /// Where it starts.
    pub line: usize,
    /// `namespace/name`, when it has a name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub route: Option<String>,
    /// Model names it serves.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Every problem, in file order.
    pub problems: Vec<Problem>,
    /// The spec, when it parsed (for the cluster checks).
    #[serde(skip)]
    pub spec: Option<LlmRouteSpec>,
    #[serde(skip)]
    positions: locate::Document,
}

/// Every file's documents.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Every document of every file, in order.
    pub documents: Vec<DocumentReport>,
    /// Problems that belong to a file rather than a document (unreadable, not YAML, empty).
    #[serde(rename = "fileProblems", skip_serializing_if = "Vec::is_empty")]
    pub file_problems: Vec<Problem>,
    /// The files, in the order given.
    #[serde(skip)]
    pub files: Vec<String>,
}

/// A `secretRef` a route names: the document, the field, the namespace, the Secret and key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SecretUse {
    /// Index into [`Report::documents`].
    pub document: usize,
    /// `spec.targets[0].credentials.secretRef`.
    pub field: String,
    /// The Secret's namespace (the route's).
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// The key.
    pub key: String,
}

impl Report {
    /// Whether nothing is wrong.
    pub fn ok(&self) -> bool {
        self.file_problems.is_empty() && self.documents.iter().all(|d| d.problems.is_empty())
    }

    /// Adds a problem found in the cluster at `field` of document `index`.
    pub fn add_cluster_problem(&mut self, index: usize, field: &str, message: String, fix: &str) {
        if let Some(doc) = self.documents.get_mut(index) {
            // The cluster's answer replaces the compiler's guess about the same field (a
            // ConfigMap it could not see).
            doc.problems
                .retain(|p| !(p.stage == Stage::Policy && p.field == field));
            let at = doc.positions.find(field);
            doc.problems.push(Problem {
                file: doc.file.clone(),
                line: at.line,
                column: at.column,
                field: field.to_owned(),
                message,
                fix: fix.to_owned(),
                stage: Stage::Cluster,
            });
            doc.problems.sort_by_key(|p| (p.line, p.column));
        }
    }

    /// Every problem, file by file in the order given, each file's in file order.
    pub fn problems(&self) -> impl Iterator<Item = &Problem> {
        self.files.iter().flat_map(|f| {
            self.file_problems
                .iter()
                .filter(move |p| &p.file == f)
                .chain(
                    self.documents
                        .iter()
                        .filter(move |d| &d.file == f)
                        .flat_map(|d| d.problems.iter()),
                )
        })
    }

    /// The report as the user asked for it.
    pub fn render(&self, output: Output, style: Style) -> Result<String, String> {
        #[derive(Serialize)]
        struct Out<'a> {
            ok: bool,
            #[serde(flatten)]
            report: &'a Report,
        }
        if let Some(s) = structured(
            output,
            &Out {
                ok: self.ok(),
                report: self,
            },
        )? {
            return Ok(s);
        }
        let mut out = String::new();
        for p in self.problems() {
            let field = if p.field.is_empty() {
                String::new()
            } else {
                format!("{}: ", style.bad(&p.field))
            };
            out.push_str(&format!(
                "{}: {field}{} — {}\n",
                style.bold(&format!("{}:{}:{}", p.file, p.line, p.column)),
                p.message,
                p.fix
            ));
        }
        for d in &self.documents {
            let what = d
                .route
                .as_deref()
                .map_or_else(|| format!("document {}", d.index), |r| format!("route {r}"));
            let verdict = if d.problems.is_empty() {
                style.good("ok")
            } else {
                style.bad(&format!(
                    "{} problem{}",
                    d.problems.len(),
                    if d.problems.len() == 1 { "" } else { "s" }
                ))
            };
            let models = if d.models.is_empty() {
                String::new()
            } else {
                style.dim(&format!(" (models: {})", d.models.join(", ")))
            };
            out.push_str(&format!(
                "{}:{}: {what}: {verdict}{models}\n",
                d.file, d.line
            ));
        }
        Ok(out)
    }
}

/// Checks every file, `(name shown, text)`, as a standalone sidecar would load it.
pub fn check_files(files: &[(String, String)]) -> Report {
    check_files_in(files, &Mode::Standalone)
}

/// Checks every file, `(name shown, text)`, compiled as `mode` says.
pub fn check_files_in(files: &[(String, String)], mode: &Mode) -> Report {
    let mut report = Report::default();
    let mut compiled: Vec<(usize, Route)> = Vec::new();
    let mut loaded = Vec::with_capacity(files.len());
    for (file, text) in files {
        report.files.push(file.clone());
        let dir = Path::new(file).parent().unwrap_or(Path::new("."));
        let dir = if dir.as_os_str().is_empty() {
            Path::new(".")
        } else {
            dir
        };
        let dir = dir.to_owned();
        let sources = |namespace: &str| match mode {
            Mode::Standalone => Sources::in_dir(&dir),
            Mode::Cluster { config_maps, .. } => Sources {
                base_dir: None,
                config_maps: config_maps.get(namespace).cloned().unwrap_or_default(),
            },
        };
        let default_namespace = match mode {
            Mode::Standalone => "default",
            Mode::Cluster { namespace, .. } => namespace.as_str(),
        };
        check_file(
            file,
            text,
            default_namespace,
            &sources,
            &mut report,
            &mut compiled,
        );
        loaded.push((file, text, Sources::in_dir(&dir)));
    }
    // One document per route: applied, a second one would replace the first.
    let mut ids: BTreeMap<RouteId, usize> = BTreeMap::new();
    compiled.retain(|(doc, route)| match ids.get(&route.id) {
        None => {
            ids.insert(route.id.clone(), *doc);
            true
        }
        Some(&first) => {
            let (file, line) = {
                let d = &report.documents[first];
                (d.file.clone(), d.line)
            };
            push(
                &mut report.documents[*doc],
                "metadata.name",
                format!(
                    "route {} is defined again (first at {file}:{line})",
                    route.id
                ),
                "give each route its own name, or remove one of the two",
                Stage::Policy,
            );
            false
        }
    });
    // One route per model name in a namespace, across every file.
    // Each namespace is one sidecar's set of routes (a standalone file is checked whole by
    // the loader below).
    let mut by_namespace: BTreeMap<String, Vec<Route>> = BTreeMap::new();
    for (_, route) in compiled {
        by_namespace
            .entry(route.id.namespace.clone())
            .or_default()
            .push(route);
    }
    let refused = by_namespace
        .into_values()
        .flat_map(|routes| RouteSet::new(routes).1);
    for (id, error) in refused {
        if let Some(&doc) = ids.get(&id) {
            let field = if let InvalidRoute::ModelTaken { model, .. } = &error {
                let d = &report.documents[doc];
                let i = d.models.iter().position(|m| m == model).unwrap_or(0);
                format!("spec.match.models[{i}]")
            } else {
                field_of(&error)
            };
            push(
                &mut report.documents[doc],
                &field,
                message_of(&error),
                fix_of(&error),
                Stage::Policy,
            );
        }
    }
    // What the sidecar's own loader says of each whole file in which nothing above found a
    // problem: nothing it would refuse may pass.
    for (file, text, sources) in loaded {
        let docs = report.documents.iter().filter(|d| &d.file == file);
        let clean = docs.clone().all(|d| d.problems.is_empty())
            && report.file_problems.iter().all(|p| &p.file != file);
        if clean
            && matches!(mode, Mode::Standalone)
            && docs.count() > 0
            && let Err(e) = plumb_policy::parse_routes_file_with(text, &sources)
        {
            report.file_problems.push(Problem {
                file: file.clone(),
                line: 1,
                column: 1,
                field: String::new(),
                message: e.to_string(),
                fix: "the standalone sidecar refuses this file; fix what the message names".into(),
                stage: Stage::Policy,
            });
        }
    }
    for d in &mut report.documents {
        d.problems.sort_by_key(|p| (p.line, p.column));
    }
    report
}

fn check_file(
    file: &str,
    text: &str,
    default_namespace: &str,
    sources: &dyn Fn(&str) -> Sources,
    report: &mut Report,
    compiled: &mut Vec<(usize, Route)>,
) {
    let file_problem = |at: Position, message: String, fix: &str| Problem {
        file: file.to_owned(),
        line: at.line,
        column: at.column,
        field: String::new(),
        message,
        fix: fix.to_owned(),
        stage: Stage::Yaml,
    };
    let positions = match locate::index(text) {
        Ok(p) => p,
        Err(e) => {
            report.file_problems.push(file_problem(
                e.position,
                format!("not valid YAML: {}", e.message),
                "fix the YAML syntax at this place (indentation, an unclosed bracket or quote)",
            ));
            return;
        }
    };
    let values: Vec<Value> = match serde_saphyr::from_multiple(text) {
        Ok(v) => v,
        Err(e) => {
            let at = e
                .location()
                .map_or(Position { line: 1, column: 1 }, |l| Position {
                    line: usize::try_from(l.line()).unwrap_or(1),
                    column: usize::try_from(l.column()).unwrap_or(1),
                });
            report.file_problems.push(file_problem(
                at,
                format!("not valid YAML: {e}"),
                "fix the YAML at this place",
            ));
            return;
        }
    };
    let positions: Vec<locate::Document> = positions.into_iter().filter(|d| !d.empty).collect();
    if values.is_empty() {
        report.file_problems.push(file_problem(
            Position { line: 1, column: 1 },
            "the file holds no LlmRoute".into(),
            "add an LlmRoute document (`plumb init` writes a starter file)",
        ));
        return;
    }
    for (index, value) in values.into_iter().enumerate() {
        let positions = positions.get(index).cloned().unwrap_or_default();
        let doc_index = report.documents.len();
        report.documents.push(DocumentReport {
            file: file.to_owned(),
            index,
            line: positions.start.line.max(1),
            route: None,
            models: Vec::new(),
            problems: Vec::new(),
            spec: None,
            positions,
        });
        let doc = &mut report.documents[doc_index];
        if let Some(route) = check_document(doc, &value, default_namespace, sources) {
            compiled.push((doc_index, route));
        }
    }
}

/// Checks one document; the compiled route when it compiles.
fn check_document(
    doc: &mut DocumentReport,
    value: &Value,
    default_namespace: &str,
    sources: &dyn Fn(&str) -> Sources,
) -> Option<Route> {
    let api_version = value.get("apiVersion").and_then(Value::as_str);
    let kind = value.get("kind").and_then(Value::as_str);
    let want = format!("{}/{}", plumb_api::GROUP, plumb_api::VERSION);
    if api_version != Some(want.as_str()) || kind != Some("LlmRoute") {
        let field = if api_version == Some(want.as_str()) {
            "kind"
        } else {
            "apiVersion"
        };
        push(
            doc,
            field,
            format!(
                "expected apiVersion {want} and kind LlmRoute, found {} {}",
                api_version.unwrap_or("(none)"),
                kind.unwrap_or("(none)")
            ),
            "a routes file holds only LlmRoute documents; move other kinds to another file",
            Stage::Yaml,
        );
        return None;
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty());
    let namespace = value.pointer("/metadata/namespace").and_then(Value::as_str);
    let namespace = namespace.unwrap_or(default_namespace);
    if let Some(n) = name {
        doc.route = Some(format!("{namespace}/{n}"));
        if !dns_subdomain(n) {
            push(
                doc,
                "metadata.name",
                format!("{n:?} is not a valid resource name"),
                "use lower-case letters, digits, '-' and '.', at most 253, starting and ending with a letter or digit",
                Stage::Schema,
            );
        }
    } else {
        push(
            doc,
            "metadata.name",
            "metadata.name is required".into(),
            "name the route (lower-case letters, digits and '-')",
            Stage::Yaml,
        );
    }
    if let Some(models) = value
        .pointer("/spec/match/models")
        .and_then(Value::as_array)
    {
        doc.models = models
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect();
    }
    match schema::check(value) {
        Ok(violations) => {
            for v in violations {
                let fix = schema_fix(&v);
                let stage = if v.rule { Stage::Rule } else { Stage::Schema };
                push(doc, &v.field, v.message, &fix, stage);
            }
        }
        Err(e) => push(
            doc,
            "",
            format!("the CRD's schema could not be loaded: {e}"),
            "report this as a bug",
            Stage::Schema,
        ),
    }
    let spec_value = value.get("spec").cloned().unwrap_or(Value::Null);
    let spec: LlmRouteSpec = match serde_json::from_value(spec_value) {
        Ok(s) => s,
        Err(e) => {
            // The schema names the field; serde's message only repeats it without a place.
            if doc.problems.is_empty() {
                push(
                    doc,
                    "spec",
                    e.to_string(),
                    "make the spec match the LlmRoute shape (`kubectl explain llmroute.spec`)",
                    Stage::Policy,
                );
            }
            return None;
        }
    };
    doc.spec = Some(spec.clone());
    let name = name?;
    match plumb_policy::compile_with(namespace, name, &spec, &sources(namespace)) {
        Ok(route) => Some(route),
        Err(e) => {
            let field = field_of(&e);
            // The schema or a rule already said it, at the same place or in the same words.
            let message = message_of(&e);
            if !doc
                .problems
                .iter()
                .any(|p| p.field == field || p.message == message)
            {
                push(doc, &field, message, fix_of(&e), Stage::Policy);
            }
            None
        }
    }
}

fn push(doc: &mut DocumentReport, field: &str, message: String, fix: &str, stage: Stage) {
    let at = doc.positions.find(field);
    doc.problems.push(Problem {
        file: doc.file.clone(),
        line: at.line,
        column: at.column,
        field: field.to_owned(),
        message,
        fix: fix.to_owned(),
        stage,
    });
}

/// Whether `name` is a DNS-1123 subdomain, as the API server requires of a resource's name.
fn dns_subdomain(name: &str) -> bool {
    let alnum = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit();
    name.len() <= 253
        && name.starts_with(alnum)
        && name.ends_with(alnum)
        && name.chars().all(|c| alnum(c) || c == '-' || c == '.')
}

/// The Secrets every document names, for `--cluster`.
pub fn secret_refs(report: &Report) -> Vec<SecretUse> {
    let mut out = Vec::new();
    for (document, d) in report.documents.iter().enumerate() {
        let (Some(spec), Some(namespace)) = (&d.spec, d.namespace()) else {
            continue;
        };
        for (i, t) in spec.targets.iter().enumerate() {
            if let Some(r) = &t.credentials.secret_ref {
                out.push(SecretUse {
                    document,
                    field: format!("spec.targets[{i}].credentials.secretRef"),
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                });
            }
        }
    }
    out
}

/// A ConfigMap key a route's contract takes a schema from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigMapUse {
    /// Index into [`Report::documents`].
    pub document: usize,
    /// `spec.contract.schema` or `spec.contract.toolArguments[0].schema`.
    pub field: String,
    /// The route's namespace.
    pub namespace: String,
    /// The ConfigMap.
    pub name: String,
    /// The key.
    pub key: String,
}

/// The ConfigMaps every document's contract names, for `--cluster`.
pub fn config_map_refs(report: &Report) -> Vec<ConfigMapUse> {
    let mut out = Vec::new();
    for (document, d) in report.documents.iter().enumerate() {
        let (Some(spec), Some(namespace)) = (&d.spec, d.namespace()) else {
            continue;
        };
        let Some(contract) = &spec.contract else {
            continue;
        };
        let schemas = contract
            .schema
            .iter()
            .map(|s| ("spec.contract.schema".to_owned(), s))
            .chain(
                contract
                    .tool_arguments
                    .iter()
                    .flatten()
                    .enumerate()
                    .map(|(i, t)| {
                        (
                            format!("spec.contract.toolArguments[{i}].schema"),
                            &t.schema,
                        )
                    }),
            );
        for (field, source) in schemas {
            if let Some(r) = &source.config_map_key_ref {
                out.push(ConfigMapUse {
                    document,
                    field,
                    namespace: namespace.to_owned(),
                    name: r.name.clone(),
                    key: r.key.clone(),
                });
            }
        }
    }
    out
}

impl DocumentReport {
    /// The route's namespace, when it has a name.
    pub fn namespace(&self) -> Option<&str> {
        self.route
            .as_deref()
            .and_then(|r| r.split_once('/'))
            .map(|(ns, _)| ns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Report {
        check_files(&[("r.yaml".into(), text.into())])
    }

    const OK: &str = "apiVersion: plumb.dev/v1alpha1\nkind: LlmRoute\nmetadata: {name: r}\nspec:\n  match: {models: [m]}\n  targets:\n    - {name: a, provider: openai, baseUrl: 'http://h/v1', model: up, credentials: {none: true}}\n";

    #[test]
    fn a_valid_file_has_no_problems() {
        let r = check(OK);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.documents[0].route.as_deref(), Some("default/r"));
    }

    #[test]
    fn a_policy_mistake_is_placed_at_its_field() {
        let text = OK.replace(
            "models: [m]}",
            "models: [m]}\n  deadlines: {total: 1s, connect: 5s}",
        );
        let r = check(&text);
        let p = &r.documents[0].problems;
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(p[0].field, "spec.deadlines.connect");
        assert_eq!((p[0].line, p[0].column), (6, 26));
        assert_eq!(p[0].stage, Stage::Policy);
    }

    #[test]
    fn a_resource_name_the_api_server_refuses_is_a_problem() {
        let r = check(&OK.replace("{name: r}", "{name: Chat_Route}"));
        let p: Vec<&Problem> = r.problems().collect();
        assert_eq!(p[0].field, "metadata.name", "{p:?}");
        assert_eq!((p[0].line, p[0].column), (3, 12));
    }

    #[test]
    fn empty_documents_are_skipped_as_the_loader_skips_them() {
        let text = format!(
            "---\n{OK}---\n---\n{}",
            OK.replace("{name: r}", "{name: s}")
                .replace("[m]", "[other]")
        );
        let r = check(&text);
        assert!(r.ok(), "{r:?}");
        assert_eq!(r.documents.len(), 2);
        assert_eq!(r.documents[1].route.as_deref(), Some("default/s"));
        let bad = text.replace("[other]", "[other, '']");
        let r = check(&bad);
        let p: Vec<&Problem> = r.problems().collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!(
            (p[0].line, p[0].field.as_str()),
            (15, "spec.match.models[1]"),
            "{p:?}"
        );
    }

    #[test]
    fn a_route_defined_twice_is_a_problem_at_the_second() {
        let text = format!("{OK}---\n{OK}");
        let r = check(&text);
        let p: Vec<&Problem> = r.problems().collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert_eq!((p[0].line, p[0].field.as_str()), (11, "metadata.name"));
        assert_eq!(
            p[0].message,
            "route default/r is defined again (first at r.yaml:1)"
        );
    }

    #[test]
    fn two_routes_serving_one_model_are_refused() {
        let text = format!("{OK}---\n{}", OK.replace("{name: r}", "{name: s}"));
        let r = check(&text);
        assert!(!r.ok());
        let p: Vec<&Problem> = r.problems().collect();
        assert_eq!(p.len(), 1, "{p:?}");
        assert!(p[0].message.contains("already served"), "{p:?}");
    }
}

//! Standalone route files: multi-document YAML of `LlmRoute`s, the same documents a cluster
//! accepts.

use plumb_api::LlmRouteSpec;
use serde::Deserialize;

use crate::contract::Sources;
use crate::route::{InvalidRoute, RouteId, RouteSet, compile_with};

/// Why a routes file was refused. The whole file is refused when any route in it is invalid,
/// so a half-applied file never serves.
#[derive(Debug, thiserror::Error)]
pub enum InvalidRoutesFile {
    /// Not YAML, or a document that is not an `LlmRoute` of the right shape.
    #[error("{0}")]
    Yaml(String),
    /// A document of another kind or version.
    #[error(
        "document {index}: expected apiVersion plumb.dev/v1alpha1 and kind LlmRoute, found {api_version} {kind}"
    )]
    Kind {
        /// 0-based position of the document in the file.
        index: usize,
        /// Its `apiVersion`.
        api_version: String,
        /// Its `kind`.
        kind: String,
    },
    /// A document without `metadata.name`.
    #[error("document {index}: metadata.name is required")]
    NoName {
        /// 0-based position.
        index: usize,
    },
    /// A route that does not compile.
    #[error("route {id}: {error}")]
    Route {
        /// The route.
        id: RouteId,
        /// What is wrong.
        error: InvalidRoute,
    },
    /// The file holds no route.
    #[error("the file holds no LlmRoute")]
    Empty,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    api_version: String,
    kind: String,
    metadata: Metadata,
    spec: LlmRouteSpec,
    // A status copied from a cluster is accepted and ignored.
    #[serde(default)]
    #[allow(dead_code)]
    status: Option<serde::de::IgnoredAny>,
}

#[derive(Deserialize)]
struct Metadata {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// Parses and compiles every route of a file. Documents without a namespace are in `default`.
/// Schema files are read relative to the working directory.
pub fn parse_routes_file(text: &str) -> Result<RouteSet, InvalidRoutesFile> {
    parse_routes_file_with(text, &Sources::default())
}

/// [`parse_routes_file`], with schema references taken from `sources` (standalone: the
/// routes file's directory).
pub fn parse_routes_file_with(
    text: &str,
    sources: &Sources,
) -> Result<RouteSet, InvalidRoutesFile> {
    let docs: Vec<Document> =
        serde_saphyr::from_multiple(text).map_err(|e| InvalidRoutesFile::Yaml(e.to_string()))?;
    let mut routes = Vec::with_capacity(docs.len());
    for (index, doc) in docs.into_iter().enumerate() {
        if doc.api_version != format!("{}/{}", plumb_api::GROUP, plumb_api::VERSION)
            || doc.kind != "LlmRoute"
        {
            return Err(InvalidRoutesFile::Kind {
                index,
                api_version: doc.api_version,
                kind: doc.kind,
            });
        }
        let name = doc
            .metadata
            .name
            .filter(|n| !n.is_empty())
            .ok_or(InvalidRoutesFile::NoName { index })?;
        let namespace = doc
            .metadata
            .namespace
            .unwrap_or_else(|| "default".to_owned());
        let route = compile_with(&namespace, &name, &doc.spec, sources).map_err(|error| {
            InvalidRoutesFile::Route {
                id: RouteId {
                    namespace: namespace.clone(),
                    name: name.clone(),
                },
                error,
            }
        })?;
        routes.push(route);
    }
    if routes.is_empty() {
        return Err(InvalidRoutesFile::Empty);
    }
    let (set, mut refused) = RouteSet::new(routes);
    match refused.pop() {
        Some((id, error)) => Err(InvalidRoutesFile::Route { id, error }),
        None => Ok(set),
    }
}

//! Where a contract's schemas come from (inline, a file beside the routes file, a ConfigMap
//! key the operator resolved) and the schemas compiled.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use plumb_api::{ConfigMapKeyRef, SchemaSource};
use serde_json::Value;

use super::bounds::bounded;
use crate::route::InvalidRoute;

/// Where schemas given by reference come from.
#[derive(Clone, Debug, Default)]
pub struct Sources {
    /// The directory `file` references are relative to (standalone: the routes file's).
    pub base_dir: Option<PathBuf>,
    /// ConfigMap keys the operator resolved: `(name, key)` to the text.
    pub config_maps: HashMap<(String, String), String>,
}

impl Sources {
    /// Sources relative to a directory, without ConfigMaps (standalone).
    pub fn in_dir(dir: impl Into<PathBuf>) -> Sources {
        Sources {
            base_dir: Some(dir.into()),
            config_maps: HashMap::new(),
        }
    }

    /// The schema a source names, parsed.
    fn schema(&self, field: &str, source: &SchemaSource) -> Result<Value, InvalidRoute> {
        let invalid = |reason: String| InvalidRoute::Contract {
            field: field.to_owned(),
            reason,
        };
        let (text, from) = match (&source.inline, &source.file, &source.config_map_key_ref) {
            (Some(v), None, None) => return Ok(v.clone()),
            (None, Some(file), None) => {
                // Only a routes file on the user's own disk may name other files: in a cluster
                // the path would be read on the operator's (or the sidecar's) filesystem — its
                // ServiceAccount token included — by whoever may write an LlmRoute.
                let Some(dir) = &self.base_dir else {
                    return Err(invalid(
                        "schema files are read only beside a routes file (standalone); in a cluster, use inline or configMapKeyRef".to_owned(),
                    ));
                };
                let path = if Path::new(file).is_relative() {
                    dir.join(file)
                } else {
                    PathBuf::from(file)
                };
                let text = std::fs::read_to_string(&path).map_err(|e| {
                    invalid(format!(
                        "the schema file {} cannot be read: {e}",
                        path.display()
                    ))
                })?;
                (text, path.display().to_string())
            }
            (None, None, Some(ConfigMapKeyRef { name, key })) => {
                let text = self
                    .config_maps
                    .get(&(name.clone(), key.clone()))
                    .ok_or_else(|| {
                        invalid(format!(
                            "the ConfigMap key {name}/{key} is not available (in a cluster the operator resolves it; standalone, use file or inline)"
                        ))
                    })?;
                (text.clone(), format!("ConfigMap {name} key {key}"))
            }
            (i, f, c) => {
                let found = [i.is_some(), f.is_some(), c.is_some()]
                    .into_iter()
                    .filter(|x| *x)
                    .count();
                return Err(invalid(format!(
                    "set exactly one of inline, file or configMapKeyRef (found {found})"
                )));
            }
        };
        // What the document says is not repeated: a route's status is read by people who may
        // not read the ConfigMap or the file.
        parse_yaml(&text).map_err(|_| invalid(format!("{from} is not JSON or YAML")))
    }

    /// Compiles the schema a source names. An error repeats an inline schema's problem (the
    /// route's author wrote it) but not a referenced document's content.
    pub(super) fn compiled(
        &self,
        field: &str,
        source: &SchemaSource,
    ) -> Result<Schema, InvalidRoute> {
        let value = self.schema(field, source)?;
        Schema::compile(value).map_err(|reason| InvalidRoute::Contract {
            field: field.to_owned(),
            reason: if source.inline.is_some() {
                format!("not a valid JSON Schema: {reason}")
            } else {
                "the referenced document is not a valid JSON Schema (its content is not repeated here)"
                    .to_owned()
            },
        })
    }
}

/// A schema's text (JSON or YAML) as a JSON value.
pub fn parse_yaml(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str::<Value>(text).map_err(|e| e.to_string())
}

/// A compiled JSON Schema.
#[derive(Clone)]
pub struct Schema {
    source: Value,
    validator: Arc<jsonschema::Validator>,
}

impl Schema {
    /// Compiles a draft 2020-12 schema, refusing one whose size, nesting or expansion through
    /// `$ref` would make validation expensive (a client's `response_format` is hostile input).
    pub fn compile(source: Value) -> Result<Schema, String> {
        bounded(&source)?;
        let validator = jsonschema::draft202012::new(&source).map_err(|e| e.to_string())?;
        Ok(Schema {
            source,
            validator: Arc::new(validator),
        })
    }

    /// The errors of `instance`, at most three, each with where it is.
    pub fn errors(&self, instance: &Value) -> Option<String> {
        let errors: Vec<String> = self
            .validator
            .iter_errors(instance)
            .take(3)
            .map(|e| {
                let at = e.instance_path().to_string();
                if at.is_empty() {
                    e.to_string()
                } else {
                    format!("{at}: {e}")
                }
            })
            .collect();
        (!errors.is_empty()).then(|| errors.join("; "))
    }
}

impl fmt::Debug for Schema {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Schema({})", self.source)
    }
}

impl PartialEq for Schema {
    fn eq(&self, other: &Schema) -> bool {
        self.source == other.source
    }
}

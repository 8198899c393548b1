//! Where each field of a YAML file is: one pass over the parser's events (granit-parser, the
//! parser under serde-saphyr, so it reads the file exactly as the loader does) records the line
//! and column of every mapping key and sequence item, by field path (`spec.targets[0].name`).
//!
//! serde-saphyr reports a location only for its own errors; the policy compiler and the schema
//! name a field, and this index turns that name back into a place in the file.

use std::collections::HashMap;

use granit_parser::{Event, Parser};

/// A place in a file: 1-based line and column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    /// Line, from 1.
    pub line: usize,
    /// Column, from 1.
    pub column: usize,
}

/// The positions of one document's fields.
#[derive(Clone, Debug, Default)]
pub struct Document {
    /// Where the document starts.
    pub start: Position,
    /// Whether it holds nothing (`---` with nothing after it), which loaders skip.
    pub empty: bool,
    fields: HashMap<String, Position>,
}

/// A file that is not YAML: where the parser stopped and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyntaxError {
    /// Where.
    pub position: Position,
    /// Why.
    pub message: String,
}

/// One open collection while walking the events.
enum Frame {
    /// A mapping: its path, and the key whose value comes next (none: a key comes next).
    Mapping { path: String, key: Option<String> },
    /// A sequence: its path and the index of the next item.
    Sequence { path: String, next: usize },
}

impl Document {
    /// The position of `field` (`spec.targets[0].name`), or of its nearest parent that is in
    /// the file (a missing field is reported where it belongs), or the document's start.
    pub fn find(&self, field: &str) -> Position {
        let mut path = field;
        loop {
            if let Some(p) = self.fields.get(path) {
                return *p;
            }
            match parent(path) {
                Some(up) => path = up,
                None => return self.start,
            }
        }
    }
}

/// `spec.targets[0].name` → `spec.targets[0]` → `spec.targets` → `spec` → none.
fn parent(path: &str) -> Option<&str> {
    let cut = path.rfind(['.', '['])?;
    Some(&path[..cut])
}

/// Indexes every document of `text`.
#[expect(
    clippy::wildcard_enum_match_arm,
    reason = "granit-parser's Event is non_exhaustive (and has a Comment variant only with a feature): the events that place nothing need a wildcard"
)]
pub fn index(text: &str) -> Result<Vec<Document>, SyntaxError> {
    let mut parser = Parser::new_from_str(text);
    let mut docs = Vec::new();
    let mut current: Option<Document> = None;
    let mut stack: Vec<Frame> = Vec::new();
    while let Some(next) = parser.next_event() {
        let (event, span) = next.map_err(|e| SyntaxError {
            position: Position {
                line: e.marker().line(),
                column: e.marker().col() + 1,
            },
            message: e.info(),
        })?;
        let at = Position {
            line: span.start.line(),
            column: span.start.col() + 1,
        };
        match event {
            Event::DocumentStart(..) => {
                stack.clear();
                current = Some(Document {
                    start: at,
                    empty: false,
                    fields: HashMap::new(),
                });
            }
            Event::DocumentEnd => docs.extend(current.take()),
            Event::Scalar(value, ..) => {
                if let Some(doc) = current.as_mut() {
                    if stack.is_empty() && matches!(value.as_ref(), "" | "~" | "null") {
                        doc.empty = true;
                    }
                    node(&mut stack, doc, at, Some(value.as_ref()));
                }
            }
            Event::Alias(_) => {
                if let Some(doc) = current.as_mut() {
                    node(&mut stack, doc, at, None);
                }
            }
            Event::MappingStart(..) => {
                if let Some(doc) = current.as_mut() {
                    let path = node(&mut stack, doc, at, None);
                    stack.push(Frame::Mapping { path, key: None });
                }
            }
            Event::SequenceStart(..) => {
                if let Some(doc) = current.as_mut() {
                    let path = node(&mut stack, doc, at, None);
                    stack.push(Frame::Sequence { path, next: 0 });
                }
            }
            Event::MappingEnd | Event::SequenceEnd => {
                stack.pop();
            }
            // Anchors, stream markers and (without the feature) comments place nothing.
            _ => {}
        }
    }
    docs.extend(current.take());
    Ok(docs)
}

/// Places one node, returning its path. A scalar in key position becomes the pending key
/// (`key` is its text) and is recorded as the field's position: a message about a field points
/// at its name.
fn node(stack: &mut [Frame], doc: &mut Document, at: Position, key: Option<&str>) -> String {
    match stack.last_mut() {
        None => String::new(),
        Some(Frame::Sequence { path, next }) => {
            let item = format!("{path}[{next}]");
            *next += 1;
            doc.fields.entry(item.clone()).or_insert(at);
            item
        }
        Some(Frame::Mapping { path, key: pending }) => match pending.take() {
            Some(k) => join(path, &k),
            None => {
                // A key: the value that follows belongs to it.
                let name = key.unwrap_or_default().to_owned();
                doc.fields.entry(join(path, &name)).or_insert(at);
                *pending = Some(name);
                String::new()
            }
        },
    }
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TWO: &str = "a: 1\nspec:\n  targets:\n    - name: x\n      baseUrl: h\n    - {name: y, baseUrl: z}\n---\nkind: K\n";

    #[test]
    fn keys_and_items_are_found_by_their_field_path() {
        let docs = index(TWO).unwrap();
        assert_eq!(docs.len(), 2);
        let p = |d: &Document, f| {
            let p = d.find(f);
            (p.line, p.column)
        };
        assert_eq!(p(&docs[0], "spec.targets[0].baseUrl"), (5, 7));
        assert_eq!(p(&docs[0], "spec.targets[1].baseUrl"), (6, 17));
        assert_eq!(p(&docs[0], "spec.targets[1]"), (6, 7));
        assert_eq!(p(&docs[1], "kind"), (8, 1));
    }

    #[test]
    fn a_missing_field_is_placed_at_its_nearest_parent() {
        let docs = index(TWO).unwrap();
        let p = docs[0].find("spec.targets[0].credentials.env");
        assert_eq!((p.line, p.column), (4, 7));
        let p = docs[0].find("nothing.here");
        assert_eq!((p.line, p.column), (1, 1));
    }

    #[test]
    fn a_syntax_error_has_a_position() {
        let e = index("a: [1, 2\nb: 3\n").unwrap_err();
        assert!(e.position.line >= 1, "{e:?}");
        assert!(!e.message.is_empty());
    }
}

//! Output: the formats every command offers, colours (only on a terminal, never with
//! `NO_COLOR`), and aligned tables.

use std::io::IsTerminal;

use serde::Serialize;

/// How a command prints its result.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// For people: aligned tables and sentences.
    #[default]
    Table,
    /// One JSON document.
    Json,
    /// One YAML document.
    Yaml,
}

/// Whether to colour: only when standard output is a terminal and `NO_COLOR` is not set (any
/// non-empty value turns colours off, as <https://no-color.org> says).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Style {
    /// Colours on.
    pub color: bool,
}

impl Style {
    /// Colours when standard output is a terminal and `NO_COLOR` is unset or empty.
    pub fn detect() -> Style {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        let dumb = std::env::var_os("TERM").is_some_and(|t| t == "dumb");
        Style {
            color: !no_color && !dumb && std::io::stdout().is_terminal(),
        }
    }

    /// Plain text, never coloured (tests, files).
    pub const fn plain() -> Style {
        Style { color: false }
    }

    fn paint(self, code: &str, text: &str) -> String {
        if self.color {
            format!("\x1b[{code}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// An error or a failing state.
    pub fn bad(self, text: &str) -> String {
        self.paint("31", text)
    }

    /// A passing state.
    pub fn good(self, text: &str) -> String {
        self.paint("32", text)
    }

    /// Something to look at.
    pub fn warn(self, text: &str) -> String {
        self.paint("33", text)
    }

    /// A heading.
    pub fn bold(self, text: &str) -> String {
        self.paint("1", text)
    }

    /// Less important text.
    pub fn dim(self, text: &str) -> String {
        self.paint("2", text)
    }
}

/// Serialises `value` as JSON or YAML (`None` for [`Output::Table`], which each command
/// renders itself).
pub fn structured<T: Serialize>(output: Output, value: &T) -> Result<Option<String>, String> {
    match output {
        Output::Table => Ok(None),
        Output::Json => serde_json::to_string_pretty(value)
            .map(|s| Some(s + "\n"))
            .map_err(|e| e.to_string()),
        Output::Yaml => serde_saphyr::to_string(value)
            .map(Some)
            .map_err(|e| e.to_string()),
    }
}

/// An aligned table: a header row and rows of cells, columns two spaces apart. Cells may
/// carry colour codes: widths count only visible characters.
pub fn table(header: &[&str], rows: &[Vec<String>], style: Style) -> String {
    let cols = header.len();
    let mut widths: Vec<usize> = header.iter().map(|h| visible(h)).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate().take(cols) {
            widths[i] = widths[i].max(visible(cell));
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<String>, out: &mut String| {
        let mut text = String::new();
        for (i, cell) in cells.iter().enumerate() {
            text.push_str(cell);
            if i + 1 < cells.len() {
                let pad = widths[i].saturating_sub(visible(cell)) + 2;
                text.push_str(&" ".repeat(pad));
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.iter().map(|h| style.bold(h)).collect(), &mut out);
    for row in rows {
        line(row.clone(), &mut out);
    }
    out
}

/// Characters a terminal shows (colour codes left out).
fn visible(text: &str) -> usize {
    let mut n = 0;
    let mut in_code = false;
    for c in text.chars() {
        match (in_code, c) {
            (false, '\x1b') => in_code = true,
            (true, 'm') => in_code = false,
            (true, _) => {}
            (false, _) => n += 1,
        }
    }
    n
}

/// Replaces all but the last four characters of a secret-looking value with `*` (values of
/// eight characters or fewer are hidden whole).
pub fn mask(secret: &str) -> String {
    let n = secret.chars().count();
    if n <= 8 {
        return "*".repeat(n.max(4));
    }
    let tail: String = secret.chars().skip(n - 4).collect();
    format!("{}{tail}", "*".repeat(n - 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_on_visible_characters() {
        let style = Style { color: true };
        let t = table(
            &["A", "B"],
            &[
                vec![style.good("ok"), "x".into()],
                vec!["long".into(), "y".into()],
            ],
            Style::plain(),
        );
        assert_eq!(t, "A     B\n\x1b[32mok\x1b[0m    x\nlong  y\n");
    }

    #[test]
    fn secrets_keep_only_their_last_four_characters() {
        assert_eq!(mask("sk-abcdefghijkl"), "***********ijkl");
        assert_eq!(mask("short"), "*****");
    }

    #[test]
    fn plain_style_never_colours() {
        assert_eq!(Style::plain().bad("x"), "x");
    }
}

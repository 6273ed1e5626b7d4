//! Config errors that say what is wrong, where (file, line, column) and what to do.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_saphyr::Spanned;

/// One problem found in a config file.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnostic {
    /// The file, as given (relative to the project when possible).
    pub file: PathBuf,
    /// 1-based line; 0 when the problem has no position (for example a missing file).
    pub line: u64,
    /// 1-based column; 0 when unknown.
    pub column: u64,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
    /// The source line, for display.
    #[serde(skip)]
    pub source_line: Option<String>,
}

impl Diagnostic {
    /// A diagnostic at a position in `text` (the content of `file`).
    pub fn at(file: &Path, text: &str, line: u64, column: u64, message: impl Into<String>) -> Self {
        let source_line = if line > 0 {
            text.lines().nth((line - 1) as usize).map(str::to_string)
        } else {
            None
        };
        Diagnostic {
            file: file.to_path_buf(),
            line,
            column,
            message: message.into(),
            hint: None,
            source_line,
        }
    }

    /// A diagnostic pointing at a spanned value.
    pub fn at_span<T>(
        file: &Path,
        text: &str,
        span: &Spanned<T>,
        message: impl Into<String>,
    ) -> Self {
        let loc = span.referenced;
        Diagnostic::at(file, text, loc.line(), loc.column(), message)
    }

    /// Adds the "what to do" part.
    pub fn hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            writeln!(
                f,
                "error: {}:{}:{}: {}",
                self.file.display(),
                self.line,
                self.column,
                self.message
            )?;
        } else {
            writeln!(f, "error: {}: {}", self.file.display(), self.message)?;
        }
        if let Some(src) = &self.source_line {
            let gutter = self.line.to_string();
            writeln!(f, " {gutter} | {src}")?;
            let pad = " ".repeat(gutter.len());
            let caret_pad = " ".repeat(self.column.saturating_sub(1) as usize);
            writeln!(f, " {pad} | {caret_pad}^")?;
        }
        if let Some(hint) = &self.hint {
            writeln!(f, "  help: {hint}")?;
        }
        Ok(())
    }
}

/// A non-empty list of diagnostics, displayed one after the other.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for d in &self.0 {
            write!(f, "{d}")?;
        }
        let n = self.0.len();
        write!(f, "{n} config error{}", if n == 1 { "" } else { "s" })
    }
}

/// The closest candidate to `word`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a, I>(word: &str, candidates: I) -> Option<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let limit = (word.chars().count() / 3).max(2);
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c.to_string())
}

/// Turns a YAML/serde error into a diagnostic with a fix suggestion where one can be guessed.
pub fn from_yaml_error(file: &Path, text: &str, err: &serde_saphyr::Error) -> Diagnostic {
    let (mut line, mut column) = err
        .location()
        .map(|l| (l.line(), l.column()))
        .unwrap_or((0, 0));
    let (message, mut hint) = match plain_words(err.without_snippet()) {
        Some((message, hint)) => (message, Some(hint)),
        None => (
            plain_expected(core_message(&err.without_snippet().to_string())),
            None,
        ),
    };
    if hint.is_some() {
        // Already said in the user's terms.
    } else if let Some((kind, word, expected)) = parse_unknown(&message) {
        let candidates: Vec<&str> = expected.iter().map(String::as_str).collect();
        hint = Some(match did_you_mean(&word, candidates.iter().copied()) {
            Some(best) => format!("did you mean `{best}`?"),
            None => format!("expected one of: {}", expected.join(", ")),
        });
        if kind == "field" {
            // Errors raised inside a tagged enum point at the enclosing map; find the key itself.
            if let Some((l, c)) = find_key_after(text, &word, line) {
                line = l;
                column = c;
            }
        }
    } else if message.starts_with("missing field") {
        hint = Some("add the field; `retl schema` prints every field and its type".into());
    }
    let mut d = Diagnostic::at(file, text, line, column, message);
    d.hint = hint;
    d
}

/// What the YAML library reports in terms of its own API ("set DuplicateKeyPolicy in
/// Options", "use from_str_multiple", Rust types), said as what is wrong in the file and
/// what to do instead. `None` when its message is already the user's business.
fn plain_words(err: &serde_saphyr::Error) -> Option<(String, String)> {
    use serde_saphyr::Error as E;
    Some(match err {
        E::DuplicateMappingKey { key: Some(k), .. } => (
            format!("`{k}` is given twice in the same mapping"),
            format!("keep one `{k}:` (YAML allows each key once per mapping)"),
        ),
        E::DuplicateMappingKey { key: None, .. } => (
            "a key is given twice in the same mapping".into(),
            "keep one of them (YAML allows each key once per mapping)".into(),
        ),
        E::MultipleDocuments { .. } => (
            "the file holds more than one YAML document (a `---` line after the first one)".into(),
            "put one sync per file in syncs/ (or several under `syncs:` in retl.yaml) and remove the `---` line".into(),
        ),
        E::NullIntoString { .. } | E::InvalidCharNull { .. } => (
            "a value is missing (empty or `null`) where text is required".into(),
            "write the value after the `:`, or remove the line if the field is optional".into(),
        ),
        E::MergeKeyNotAllowed { .. } | E::MergeValueNotMapOrSeqOfMaps { .. } => (
            "YAML merge keys (`<<:`) are not supported in retl files".into(),
            "write the fields out in full".into(),
        ),
        E::TaggedStructFieldName { tag, .. } => (
            format!("a field name carries the YAML tag `{tag}`"),
            "remove the tag: field names are plain words".into(),
        ),
        E::BinaryNotUtf8 { .. } | E::TaggedScalarCannotDeserializeIntoString { .. } => (
            "a value carries a YAML tag (`!!binary`, `!tag`) where plain text is expected".into(),
            "remove the tag and write the value as text".into(),
        ),
        E::InvalidScalar { ty, .. } => {
            let wanted = plain_type(ty)?;
            (
                format!("this value is not {wanted}"),
                format!("write {wanted} here"),
            )
        }
        E::Budget { .. } => (
            "the file is too large or too deeply nested to read (aliases expand past the limit)".into(),
            "simplify it: retl files need no anchors or aliases".into(),
        ),
        _ => return None,
    })
}

/// serde names the Rust type it wanted ("expected u32"); say what to write instead.
fn plain_expected(message: String) -> String {
    let Some((head, expected)) = message.rsplit_once(", expected ") else {
        return message;
    };
    match plain_type(expected.trim()) {
        Some(plain) => format!("{head}, expected {plain}"),
        None => message,
    }
}

/// What a Rust scalar type is, in words for a YAML file.
fn plain_type(ty: &str) -> Option<&'static str> {
    Some(match ty {
        "u8" | "u16" | "u32" | "u64" | "u128" | "usize" => "a whole number (0 or more)",
        "i8" | "i16" | "i32" | "i64" | "i128" | "isize" => "a whole number",
        "f32" | "f64" => "a number",
        "bool" | "boolean" => "true or false",
        "char" => "a single character",
        _ => return None,
    })
}

/// Strips the "error: line N column M: " prefix and the " at line N, column M" suffixes
/// that the YAML library adds: the diagnostic gives the position once, as `file:line:col`.
fn core_message(rendered: &str) -> String {
    let first = rendered.lines().next().unwrap_or(rendered);
    let mut s = first.strip_prefix("error: ").unwrap_or(first);
    if s.starts_with("line ") {
        if let Some(idx) = s.find(": ") {
            s = &s[idx + 2..];
        }
    }
    without_positions(s)
}

/// `text` without its " at line N, column M" (or "line N column M") phrases.
fn without_positions(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find(" at line ") {
        let tail = &rest[i + " at line ".len()..];
        let digits = |t: &str| t.bytes().take_while(u8::is_ascii_digit).count();
        let n = digits(tail);
        let after_line = &tail[n..];
        let sep = [", column ", " column "]
            .iter()
            .find(|sep| after_line.starts_with(**sep))
            .map_or(0, |sep| sep.len());
        let m = if sep > 0 {
            digits(&after_line[sep..])
        } else {
            0
        };
        if n == 0 || m == 0 {
            out.push_str(&rest[..i + " at line ".len()]);
            rest = tail;
            continue;
        }
        out.push_str(&rest[..i]);
        rest = &after_line[sep + m..];
    }
    out.push_str(rest);
    out
}

/// Parses serde's "unknown field `x`, expected one of a, b" (and the variant equivalent).
fn parse_unknown(message: &str) -> Option<(&'static str, String, Vec<String>)> {
    let (kind, rest) = if let Some(r) = message.strip_prefix("unknown field ") {
        ("field", r)
    } else if let Some(r) = message.strip_prefix("unknown variant ") {
        ("variant", r)
    } else {
        return None;
    };
    let (word_part, expected_part) = rest.split_once(", expected ")?;
    let word = word_part.trim_matches('`').to_string();
    let expected_part = expected_part
        .strip_prefix("one of ")
        .unwrap_or(expected_part);
    let expected = expected_part
        .split(", ")
        .map(|s| s.trim().trim_matches('`').to_string())
        .filter(|s| !s.is_empty())
        .collect();
    Some((kind, word, expected))
}

/// The position of `key:` on or after `from_line`, if written as a block mapping key.
fn find_key_after(text: &str, key: &str, from_line: u64) -> Option<(u64, u64)> {
    let start = from_line.saturating_sub(1) as usize;
    for (i, l) in text.lines().enumerate().skip(start) {
        let trimmed = l.trim_start();
        let body = trimmed.strip_prefix("- ").unwrap_or(trimmed);
        if body.starts_with(&format!("{key}:")) {
            let col = l.len() - body.len() + 1;
            return Some((i as u64 + 1, col as u64));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_close_names() {
        assert_eq!(
            did_you_mean("mapings", ["mapping", "mode", "name"]),
            Some("mapping".to_string())
        );
        assert_eq!(did_you_mean("zzzzzz", ["mapping", "mode"]), None);
    }

    #[test]
    fn parses_unknown_field_messages() {
        let (kind, word, expected) =
            parse_unknown("unknown field `modee`, expected one of name, source, mode").unwrap();
        assert_eq!(kind, "field");
        assert_eq!(word, "modee");
        assert_eq!(expected, vec!["name", "source", "mode"]);
        let (_, _, expected) = parse_unknown("unknown field `x`, expected `path`").unwrap();
        assert_eq!(expected, vec!["path"]);
    }

    #[test]
    fn names_what_to_write_instead_of_rust_types() {
        assert_eq!(
            plain_expected("invalid type: string \"x\", expected u32".into()),
            "invalid type: string \"x\", expected a whole number (0 or more)"
        );
        assert_eq!(
            plain_expected("invalid type: map, expected a string".into()),
            "invalid type: map, expected a string"
        );
    }

    #[test]
    fn says_the_position_once() {
        assert_eq!(
            core_message("error: line 3 column 5: did not find expected key at line 3, column 5"),
            "did not find expected key"
        );
        assert_eq!(
            without_positions("a at line 2 column 7, then b at line x"),
            "a, then b at line x"
        );
    }

    #[test]
    fn strips_location_prefix() {
        assert_eq!(
            core_message("error: line 4 column 1: unknown field `a`"),
            "unknown field `a`"
        );
    }
}

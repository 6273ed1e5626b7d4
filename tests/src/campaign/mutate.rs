//! Seeded mutations of a YAML file's bytes: what a hurried edit, a bad merge or a broken
//! upload does to a sync file. Each mutant is one to three mutations of the original.

use super::rng::Rng;

/// One kind of mutation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Mutation {
    /// A line removed.
    DeleteLine,
    /// A line repeated (a duplicate key, or a list item twice).
    DuplicateLine,
    /// Two neighbouring lines swapped.
    SwapLines,
    /// A scalar value replaced by another (empty, null, a number too large, a quote left open…).
    ChangeScalar,
    /// A scalar value turned into a list or a mapping.
    WrongType,
    /// The file cut at a random byte.
    Truncate,
    /// Bytes that are not UTF-8 inserted.
    InvalidUtf8,
    /// A tab in the indentation or inside a line.
    Tab,
    /// A line indented two spaces more or less.
    Indent,
    /// A YAML indicator character inserted.
    Indicator,
    /// A key misspelled.
    RenameKey,
}

impl Mutation {
    /// Every mutation kind.
    pub const ALL: [Mutation; 11] = [
        Mutation::DeleteLine,
        Mutation::DuplicateLine,
        Mutation::SwapLines,
        Mutation::ChangeScalar,
        Mutation::WrongType,
        Mutation::Truncate,
        Mutation::InvalidUtf8,
        Mutation::Tab,
        Mutation::Indent,
        Mutation::Indicator,
        Mutation::RenameKey,
    ];
}

/// Values a scalar is replaced by.
const SCALARS: &[&str] = &[
    "",
    "~",
    "null",
    "-1",
    "0",
    "101",
    "1e309",
    "99999999999999999999999",
    "2.5",
    "yes",
    "true",
    "[]",
    "{}",
    "\"\"",
    "'unterminated",
    "\"unterminated",
    "*undefined_alias",
    "&anchor value",
    "!!binary AA==",
    "!custom tag",
    "|",
    ">-",
    "\"\\xZZ\"",
    "a: b: c",
    "- item",
    "%YAML 1.1",
    "@reserved",
    "`backtick",
    "\u{feff}bom",
    "cron(0 * * * ? *",
    "rate(0 minutes)",
    "ünïcödé",
];

/// Byte sequences that are not UTF-8: a stray byte, cut sequences, a surrogate, a BOM of the
/// wrong encoding.
const BAD_UTF8: &[&[u8]] = &[b"\xff", b"\xc3", b"\xe2\x82", b"\xed\xa0\x80", b"\xfe\xff"];

const INDICATORS: &[u8] = b":-{}[]&*!|>'\"%@`#,?";

fn lines(text: &[u8]) -> Vec<Vec<u8>> {
    text.split(|b| *b == b'\n').map(<[u8]>::to_vec).collect()
}

fn join(lines: &[Vec<u8>]) -> Vec<u8> {
    lines.join(&b'\n')
}

/// Where a line's value starts (after `key: ` or `- `), if it has one.
fn value_start(line: &[u8]) -> Option<usize> {
    if let Some(i) = line.windows(2).position(|w| w == b": ") {
        return Some(i + 2);
    }
    let trimmed = line.iter().position(|b| *b != b' ')?;
    line[trimmed..].starts_with(b"- ").then_some(trimmed + 2)
}

/// Replaces one line's value by another scalar, or wraps it in a list or a mapping; false if
/// no line has a value.
fn change_value(kind: Mutation, ls: &mut [Vec<u8>], rng: &mut Rng) -> bool {
    let candidates: Vec<usize> = (0..ls.len())
        .filter(|i| value_start(&ls[*i]).is_some())
        .collect();
    if candidates.is_empty() {
        return false;
    }
    let i = *rng.pick(&candidates);
    let start = value_start(&ls[i]).unwrap_or(0);
    let old = ls[i][start..].to_vec();
    let new: Vec<u8> = if kind == Mutation::ChangeScalar {
        rng.pick(SCALARS).as_bytes().to_vec()
    } else if rng.chance(50) {
        [b"[".as_slice(), &old, b"]"].concat()
    } else {
        [b"{ x: ".as_slice(), &old, b" }"].concat()
    };
    ls[i].truncate(start);
    ls[i].extend_from_slice(&new);
    true
}

/// Applies one `kind` of mutation to `text`.
pub fn apply(kind: Mutation, text: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut ls = lines(text);
    if ls.is_empty() {
        return text.to_vec();
    }
    let at = rng.below(ls.len());
    match kind {
        Mutation::DeleteLine => {
            ls.remove(at);
        }
        Mutation::DuplicateLine => {
            let line = ls[at].clone();
            ls.insert(at, line);
        }
        Mutation::SwapLines => {
            if at + 1 < ls.len() {
                ls.swap(at, at + 1);
            }
        }
        Mutation::ChangeScalar | Mutation::WrongType => {
            if !change_value(kind, &mut ls, rng) {
                return text.to_vec();
            }
        }
        Mutation::Truncate => {
            let cut = rng.below(text.len().max(1));
            return text[..cut].to_vec();
        }
        Mutation::InvalidUtf8 => {
            let pos = rng.below(text.len().max(1));
            let bad: &[u8] = BAD_UTF8[rng.below(BAD_UTF8.len())];
            return [&text[..pos], bad, &text[pos..]].concat();
        }
        Mutation::Tab => {
            let line = &mut ls[at];
            let indent = line.iter().take_while(|b| **b == b' ').count();
            if indent > 0 && rng.chance(60) {
                line.splice(..indent, [b'\t']);
            } else {
                let pos = rng.below(line.len() + 1);
                line.insert(pos, b'\t');
            }
        }
        Mutation::Indent => {
            let line = &mut ls[at];
            if line.starts_with(b"  ") && rng.chance(50) {
                line.drain(..2);
            } else {
                line.splice(..0, *b"  ");
            }
        }
        Mutation::Indicator => {
            let line = &mut ls[at];
            let pos = rng.below(line.len() + 1);
            line.insert(pos, *rng.pick(INDICATORS));
        }
        Mutation::RenameKey => {
            let line = &mut ls[at];
            if let Some(colon) = line.iter().position(|b| *b == b':') {
                let first = line.iter().position(|b| *b != b' ' && *b != b'-');
                if let Some(p) = first.filter(|p| *p < colon) {
                    line.insert(p + rng.below(colon - p), b'x');
                }
            }
        }
    }
    join(&ls)
}

/// A mutant of `text`: one to three mutations, and the kinds applied.
pub fn mutant(text: &[u8], rng: &mut Rng) -> (Vec<u8>, Vec<Mutation>) {
    let mut out = text.to_vec();
    let mut kinds = Vec::new();
    for _ in 0..rng.range(1, 4) {
        let kind = *rng.pick(&Mutation::ALL);
        out = apply(kind, &out, rng);
        kinds.push(kind);
    }
    (out, kinds)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &[u8] = b"name: people\nmode: upsert\nmapping:\n  id: id\n";

    #[test]
    fn every_kind_changes_or_keeps_a_valid_length_and_is_reproducible() {
        for kind in Mutation::ALL {
            let a = apply(kind, TEXT, &mut Rng::new(3));
            let b = apply(kind, TEXT, &mut Rng::new(3));
            assert_eq!(a, b, "{kind:?} is seeded");
        }
        let bad = apply(Mutation::InvalidUtf8, TEXT, &mut Rng::new(1));
        assert!(std::str::from_utf8(&bad).is_err());
        let cut = apply(Mutation::Truncate, TEXT, &mut Rng::new(1));
        assert!(cut.len() < TEXT.len());
    }
}

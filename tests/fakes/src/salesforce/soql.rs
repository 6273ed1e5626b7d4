//! The small SOQL subset the fake answers:
//! `SELECT f1, f2 FROM SObject [WHERE f IN (lit, ...) | f = lit | f != lit] [ORDER BY f [ASC|DESC]] [LIMIT n]`.
//! Keywords are case-insensitive; literals are quoted strings (with the escape sequences
//! `\' \" \\ \n \r \t \b \f` of the SOQL reference), numbers, `true`/`false` and `null`
//! (<https://developer.salesforce.com/docs/atlas.en-us.soql_sosl.meta/soql_sosl/sforce_api_calls_soql_select_quotedstringescapes.htm>).
//! Anything else is refused, as the API refuses a malformed query, with `MALFORMED_QUERY`.

use serde_json::Value;

use crate::util::scalar_text;

/// A literal of a `WHERE` condition.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Literal {
    Text(String),
    Number(String),
    Bool(bool),
    Null,
}

impl Literal {
    /// Whether a stored value satisfies `field = literal`. Text compares case-insensitively,
    /// as SOQL does; record ids compare exactly, and a 15-character id matches its 18-character
    /// form.
    pub(crate) fn matches(&self, field: &str, stored: Option<&Value>) -> bool {
        let stored = stored.filter(|v| !v.is_null());
        match (self, stored) {
            (Literal::Null, None) => true,
            (Literal::Null, Some(_)) | (_, None) => false,
            (Literal::Text(t), Some(v)) if field.eq_ignore_ascii_case("id") => {
                let id = scalar_text(v);
                id == *t || (t.len() == 15 && id.len() == 18 && id.starts_with(t.as_str()))
            }
            (Literal::Text(t), Some(v)) => scalar_text(v).to_lowercase() == t.to_lowercase(),
            (Literal::Number(n), Some(v)) => {
                let text = scalar_text(v);
                text == *n
                    || matches!((text.parse::<f64>(), n.parse::<f64>()), (Ok(a), Ok(b)) if a == b)
            }
            (Literal::Bool(b), Some(v)) => scalar_text(v).eq_ignore_ascii_case(&b.to_string()),
        }
    }
}

/// `WHERE field IN (values)` (`=` is a one-value list); `!=` / `<>` negate a one-value list.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Filter {
    pub field: String,
    pub values: Vec<Literal>,
    pub negated: bool,
}

impl Filter {
    /// Whether a record's stored value of the field passes the condition.
    pub(crate) fn accepts(&self, stored: Option<&Value>) -> bool {
        self.values.iter().any(|l| l.matches(&self.field, stored)) != self.negated
    }
}

/// A parsed query.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Query {
    pub fields: Vec<String>,
    pub object: String,
    pub filter: Option<Filter>,
    pub order_by: Option<(String, bool)>,
    pub limit: Option<usize>,
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Literal(Literal),
    Comma,
    Open,
    Close,
    Equals,
    NotEquals,
}

/// The characters while `keep` holds.
fn take_while(
    chars: &mut std::iter::Peekable<std::str::Chars<'_>>,
    keep: impl Fn(char) -> bool,
) -> String {
    let mut out = String::new();
    while let Some(&d) = chars.peek() {
        if !keep(d) {
            break;
        }
        out.push(d);
        chars.next();
    }
    out
}

/// A quoted literal after its opening quote, with SOQL's escapes.
fn string_literal(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, String> {
    let mut s = String::new();
    loop {
        match chars.next() {
            None => return Err("unterminated string literal".into()),
            Some('\'') => return Ok(s),
            Some('\\') => match chars.next() {
                Some('n' | 'N') => s.push('\n'),
                Some('r' | 'R') => s.push('\r'),
                Some('t' | 'T') => s.push('\t'),
                Some('b' | 'B') => s.push('\u{8}'),
                Some('f' | 'F') => s.push('\u{c}'),
                Some(e @ ('\'' | '"' | '\\')) => s.push(e),
                Some(e) => return Err(format!("invalid escape sequence \\{e}")),
                None => return Err("unterminated string literal".into()),
            },
            Some(ch) => s.push(ch),
        }
    }
}

fn tokens(q: &str) -> Result<Vec<Token>, String> {
    let mut out = Vec::new();
    let mut chars = q.chars().peekable();
    while let Some(&c) = chars.peek() {
        match c {
            c if c.is_whitespace() => {
                chars.next();
            }
            '!' | '<' => {
                chars.next();
                match (c, chars.next()) {
                    ('!', Some('=')) | ('<', Some('>')) => out.push(Token::NotEquals),
                    _ => return Err(format!("unexpected token: '{c}'")),
                }
            }
            ',' | '(' | ')' | '=' => {
                chars.next();
                out.push(match c {
                    ',' => Token::Comma,
                    '(' => Token::Open,
                    ')' => Token::Close,
                    _ => Token::Equals,
                });
            }
            '\'' => {
                chars.next();
                out.push(Token::Literal(Literal::Text(string_literal(&mut chars)?)));
            }
            c if c.is_ascii_digit() || c == '-' || c == '.' => {
                let n = take_while(&mut chars, |d| {
                    d.is_ascii_digit() || d == '-' || d == '.' || d == 'e' || d == 'E'
                });
                if n.parse::<f64>().is_err() {
                    return Err(format!("invalid number {n}"));
                }
                out.push(Token::Literal(Literal::Number(n)));
            }
            c if c.is_ascii_alphabetic() || c == '_' => {
                let w = take_while(&mut chars, |d| {
                    d.is_ascii_alphanumeric() || d == '_' || d == '.'
                });
                out.push(match w.to_ascii_lowercase().as_str() {
                    "true" => Token::Literal(Literal::Bool(true)),
                    "false" => Token::Literal(Literal::Bool(false)),
                    "null" => Token::Literal(Literal::Null),
                    _ => Token::Word(w),
                });
            }
            other => return Err(format!("unexpected token: '{other}'")),
        }
    }
    Ok(out)
}

struct Parser {
    tokens: Vec<Token>,
    at: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.at)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.at).cloned();
        self.at += 1;
        t
    }

    fn keyword(&mut self, kw: &str) -> bool {
        match self.peek() {
            Some(Token::Word(w)) if w.eq_ignore_ascii_case(kw) => {
                self.at += 1;
                true
            }
            _ => false,
        }
    }

    fn expect_keyword(&mut self, kw: &str) -> Result<(), String> {
        if self.keyword(kw) {
            Ok(())
        } else {
            Err(format!("expecting {kw}, found {}", self.describe()))
        }
    }

    fn describe(&self) -> String {
        match self.peek() {
            None => "end of query".into(),
            Some(Token::Word(w)) => format!("'{w}'"),
            Some(t) => format!("{t:?}"),
        }
    }

    fn name(&mut self) -> Result<String, String> {
        match self.next() {
            Some(Token::Word(w)) if !is_reserved(&w) => Ok(w),
            _ => {
                self.at -= 1;
                Err(format!("expecting a name, found {}", self.describe()))
            }
        }
    }

    fn literal(&mut self) -> Result<Literal, String> {
        match self.next() {
            Some(Token::Literal(l)) => Ok(l),
            _ => {
                self.at -= 1;
                Err(format!("expecting a literal, found {}", self.describe()))
            }
        }
    }
}

fn is_reserved(w: &str) -> bool {
    ["select", "from", "where", "in", "limit", "order", "by"]
        .iter()
        .any(|k| w.eq_ignore_ascii_case(k))
}

/// Parses one query of the supported subset.
pub(crate) fn parse(q: &str) -> Result<Query, String> {
    let mut p = Parser {
        tokens: tokens(q)?,
        at: 0,
    };
    p.expect_keyword("select")?;
    let mut fields = vec![p.name()?];
    while p.peek() == Some(&Token::Comma) {
        p.next();
        fields.push(p.name()?);
    }
    let mut seen: Vec<String> = Vec::new();
    for f in &fields {
        let lower = f.to_ascii_lowercase();
        if seen.contains(&lower) {
            return Err(format!("duplicate field selected: {f}"));
        }
        seen.push(lower);
    }
    p.expect_keyword("from")?;
    let object = p.name()?;
    let mut filter = None;
    if p.keyword("where") {
        let field = p.name()?;
        let mut negated = false;
        let values = if p.keyword("in") {
            if p.next() != Some(Token::Open) {
                return Err("expecting '(' after IN".into());
            }
            let mut values = vec![p.literal()?];
            loop {
                match p.next() {
                    Some(Token::Comma) => values.push(p.literal()?),
                    Some(Token::Close) => break,
                    _ => return Err("expecting ',' or ')' in the IN list".into()),
                }
            }
            values
        } else if matches!(p.peek(), Some(Token::Equals | Token::NotEquals)) {
            negated = p.next() == Some(Token::NotEquals);
            vec![p.literal()?]
        } else {
            return Err(format!("expecting IN, = or !=, found {}", p.describe()));
        };
        filter = Some(Filter {
            field,
            values,
            negated,
        });
    }
    let mut order_by = None;
    if p.keyword("order") {
        p.expect_keyword("by")?;
        let field = p.name()?;
        let descending = if p.keyword("desc") {
            true
        } else {
            p.keyword("asc");
            false
        };
        order_by = Some((field, descending));
    }
    let mut limit = None;
    if p.keyword("limit") {
        match p.literal()? {
            Literal::Number(n) => {
                limit = Some(n.parse().map_err(|_| format!("invalid LIMIT {n}"))?);
            }
            _ => return Err("LIMIT needs a number".into()),
        }
    }
    if p.peek().is_some() {
        return Err(format!("unexpected token: {}", p.describe()));
    }
    Ok(Query {
        fields,
        object,
        filter,
        order_by,
        limit,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_the_supported_subset() {
        let q = parse(r"select Id, Ext__c FROM Contact where Ext__c in ('a', 'it\'s', 3) LIMIT 5")
            .unwrap();
        assert_eq!(q.fields, ["Id", "Ext__c"]);
        assert_eq!(q.object, "Contact");
        let f = q.filter.unwrap();
        assert_eq!(f.field, "Ext__c");
        assert_eq!(
            f.values,
            [
                Literal::Text("a".into()),
                Literal::Text("it's".into()),
                Literal::Number("3".into())
            ]
        );
        assert_eq!(q.limit, Some(5));
        let q = parse("SELECT Name FROM Account WHERE Name = null ORDER BY Name DESC").unwrap();
        assert_eq!(q.filter.unwrap().values, [Literal::Null]);
        assert_eq!(q.order_by, Some(("Name".into(), true)));
        let q = parse("SELECT Id FROM Contact WHERE Ext__c != null").unwrap();
        let f = q.filter.unwrap();
        assert!(f.negated && f.accepts(Some(&json!("x"))) && !f.accepts(None));
        assert!(
            parse("SELECT Id FROM Contact WHERE Ext__c <> 'a'")
                .unwrap()
                .filter
                .unwrap()
                .negated
        );
    }

    #[test]
    fn refuses_what_it_does_not_know() {
        for bad in [
            "SELECT FROM Contact",
            "SELECT Id FROM",
            "SELECT Id, id FROM Contact",
            "SELECT Id FROM Contact WHERE Name LIKE 'a%'",
            "SELECT Id FROM Contact WHERE Name IN ('a'",
            "SELECT Id FROM Contact WHERE Name = 'a",
            "SELECT Id FROM Contact GROUP BY Name",
            "SELECT Id FROM Contact WHERE Name ! 'a'",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn literals_match_like_soql() {
        let text = Literal::Text("ABC".into());
        assert!(text.matches("Name", Some(&json!("abc"))));
        assert!(!text.matches("Id", Some(&json!("abc"))));
        let id15 = Literal::Text("003000000000001".into());
        assert!(id15.matches("Id", Some(&json!("003000000000001AAA"))));
        assert!(Literal::Number("2".into()).matches("N", Some(&json!("2.0"))));
        assert!(Literal::Null.matches("N", None));
        assert!(!Literal::Null.matches("N", Some(&json!("x"))));
    }
}

//! The CSV of Bulk API 2.0 jobs (comma-delimited, LF line endings, RFC 4180 quoting):
//! writing job data and reading result files
//! (<https://developer.salesforce.com/docs/atlas.en-us.api_asynch.meta/api_asynch/datafiles_prepare_csv.htm>).

use serde_json::Value;

/// The cell of a value. Bulk API 2.0 leaves a field unchanged when its cell is empty, and
/// sets it to null for `#N/A`; so null and the empty string (which Salesforce stores as null)
/// are `#N/A`. Objects and arrays travel as JSON text.
pub(crate) fn cell(v: &Value) -> String {
    match v {
        Value::Null => "#N/A".into(),
        Value::String(s) if s.is_empty() => "#N/A".into(),
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

fn push_cell(out: &mut String, s: &str) {
    let quote = s.is_empty()
        || s.contains([',', '"', '\n', '\r'])
        || s.starts_with(char::is_whitespace)
        || s.ends_with(char::is_whitespace);
    if quote {
        out.push('"');
        out.push_str(&s.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(s);
    }
}

/// A CSV file: the header, then one line per row.
pub(crate) fn write(header: &[String], rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for line in std::iter::once(header).chain(rows.iter().map(Vec::as_slice)) {
        for (i, c) in line.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            push_cell(&mut out, c);
        }
        out.push('\n');
    }
    out
}

/// Reads a CSV file into its header and rows (LF or CRLF line endings, quoted cells with
/// doubled quotes and line breaks).
pub(crate) fn parse(text: &str) -> Result<(Vec<String>, Vec<Vec<String>>), String> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut lines: Vec<Vec<String>> = Vec::new();
    let mut row: Vec<String> = Vec::new();
    let mut cell = String::new();
    let mut chars = text.chars().peekable();
    let mut quoted = false;
    let mut started = false;
    while let Some(c) = chars.next() {
        if quoted {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    cell.push('"');
                }
                '"' => quoted = false,
                c => cell.push(c),
            }
            continue;
        }
        match c {
            '"' if cell.is_empty() => {
                quoted = true;
                started = true;
            }
            ',' => {
                row.push(std::mem::take(&mut cell));
                started = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                row.push(std::mem::take(&mut cell));
                lines.push(std::mem::take(&mut row));
                started = false;
            }
            c => {
                cell.push(c);
                started = true;
            }
        }
    }
    if quoted {
        return Err("a quoted cell is not closed".into());
    }
    if started || !cell.is_empty() {
        row.push(cell);
        lines.push(row);
    }
    let mut it = lines.into_iter();
    let header = it.next().unwrap_or_default();
    let rows = it.filter(|r| !(r.len() == 1 && r[0].is_empty())).collect();
    Ok((header, rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn writes_and_reads_back_awkward_cells() {
        let header = vec!["Ext__c".to_string(), "Notes".to_string()];
        let rows = vec![
            vec!["1".to_string(), "a, \"quoted\"\nline".to_string()],
            vec!["2".to_string(), " padded ".to_string()],
            vec!["3".to_string(), cell(&json!(null))],
        ];
        let text = write(&header, &rows);
        assert_eq!(
            text,
            "Ext__c,Notes\n1,\"a, \"\"quoted\"\"\nline\"\n2,\" padded \"\n3,#N/A\n"
        );
        let (h, r) = parse(&text).unwrap();
        assert_eq!(h, header);
        assert_eq!(r, rows);
    }

    #[test]
    fn reads_result_files_with_crlf_and_quoted_everything() {
        let text = "\"sf__Id\",\"sf__Error\",\"Ext__c\"\r\n\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [LastName]:LastName --\",\"7\"\r\n";
        let (h, r) = parse(text).unwrap();
        assert_eq!(h, ["sf__Id", "sf__Error", "Ext__c"]);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0][0], "");
        assert_eq!(r[0][2], "7");
        assert!(parse("\"open").is_err());
        assert_eq!(parse("").unwrap(), (Vec::new(), Vec::new()));
    }

    #[test]
    fn cells_follow_bulk_conventions() {
        assert_eq!(cell(&json!("")), "#N/A");
        assert_eq!(cell(&json!(true)), "true");
        assert_eq!(cell(&json!(12.5)), "12.5");
        assert_eq!(cell(&json!({"a": 1})), r#"{"a":1}"#);
    }
}

//! CSV reading and writing for Bulk API 2.0 (job data in, result files out), honouring the
//! job's `columnDelimiter` and `lineEnding`
//! (<https://developer.salesforce.com/docs/platform/api-asynch/guide/create-job.html>).

use serde_json::{Map, Value};

/// Header and rows of one upload.
pub(crate) type Table = (Vec<String>, Vec<Vec<String>>);

/// The byte of a `columnDelimiter` name.
pub(crate) fn delimiter_byte(name: &str) -> Option<u8> {
    Some(match name {
        "COMMA" => b',',
        "BACKQUOTE" => b'`',
        "CARET" => b'^',
        "PIPE" => b'|',
        "SEMICOLON" => b';',
        "TAB" => b'\t',
        _ => return None,
    })
}

/// Parses one upload (first line is the header).
pub(crate) fn parse(data: &[u8], delimiter: u8) -> Result<Table, String> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .has_headers(true)
        .from_reader(data);
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| e.to_string())?
        .iter()
        .map(str::to_string)
        .collect();
    let mut rows = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| e.to_string())?;
        rows.push(record.iter().map(str::to_string).collect());
    }
    Ok((header, rows))
}

/// Aligns several uploads on the union of their headers (first-seen order).
pub(crate) fn merge(tables: Vec<Table>) -> Table {
    let mut header: Vec<String> = Vec::new();
    for (h, _) in &tables {
        for name in h {
            if !header.contains(name) {
                header.push(name.clone());
            }
        }
    }
    let mut rows = Vec::new();
    for (h, table_rows) in tables {
        for row in table_rows {
            let aligned = header
                .iter()
                .map(|name| {
                    h.iter()
                        .position(|x| x == name)
                        .and_then(|i| row.get(i).cloned())
                        .unwrap_or_default()
                })
                .collect();
            rows.push(aligned);
        }
    }
    (header, rows)
}

/// A row as a record: empty cells are left out (no change); `#N/A` sets the field to null.
pub(crate) fn to_record(header: &[String], row: &[String]) -> Map<String, Value> {
    header
        .iter()
        .zip(row)
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| {
            let value = if v == "#N/A" {
                Value::Null
            } else {
                Value::String(v.clone())
            };
            (k.clone(), value)
        })
        .collect()
}

/// Writes a result file: `lead` columns before the original ones, every field quoted.
pub(crate) fn write(
    lead: &[&str],
    header: &[String],
    rows: &[(Vec<String>, Vec<String>)],
    delimiter: u8,
    crlf: bool,
) -> Vec<u8> {
    let terminator = if crlf {
        csv::Terminator::CRLF
    } else {
        csv::Terminator::Any(b'\n')
    };
    let mut writer = csv::WriterBuilder::new()
        .delimiter(delimiter)
        .terminator(terminator)
        .quote_style(csv::QuoteStyle::Always)
        .from_writer(Vec::new());
    let head: Vec<&str> = lead
        .iter()
        .copied()
        .chain(header.iter().map(String::as_str))
        .collect();
    let _ = writer.write_record(&head);
    for (prefix, row) in rows {
        let _ = writer.write_record(prefix.iter().chain(row.iter()));
    }
    writer.into_inner().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_union_header() {
        let a = parse(b"Name,Ext__c\n\"A, Inc\",1\n", b',').unwrap();
        let b = parse(b"Ext__c|Phone\n2|555\n", b'|').unwrap();
        let (header, rows) = merge(vec![a, b]);
        assert_eq!(header, ["Name", "Ext__c", "Phone"]);
        assert_eq!(rows[1], ["", "2", "555"]);
        let rec = to_record(&header, &rows[0]);
        assert_eq!(rec.len(), 2);
        let out = write(
            &["sf__Id"],
            &header,
            &[(vec!["001".into()], rows[0].clone())],
            b',',
            false,
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "\"sf__Id\",\"Name\",\"Ext__c\",\"Phone\"\n\"001\",\"A, Inc\",\"1\",\"\"\n"
        );
    }
}

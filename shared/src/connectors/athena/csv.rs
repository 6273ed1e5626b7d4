//! The CSV result file Athena writes to the output location (`<id>.csv`), read incrementally:
//! bytes go in as they arrive from S3, whole records come out, so a result of any size is read
//! in the memory of one download chunk and one record.
//!
//! Athena writes RFC 4180 CSV with every value quoted (`"a ""b"""`, doubled quotes inside)
//! and NULL as an empty unquoted field, so `"",` is an empty string and `,` a NULL; a quoted
//! value may hold commas and line breaks. The first record is the header.

/// One record: its fields, `None` for NULL.
pub(super) type Record = Vec<Option<String>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a field.
    Start,
    /// Inside an unquoted field.
    Unquoted,
    /// Inside a quoted field.
    Quoted,
    /// After a quote inside a quoted field: the end of the field, or the first of two quotes.
    QuoteInQuoted,
    /// After a `\r` that ended a record (a following `\n` belongs to it).
    CarriageReturn,
}

/// The incremental parser.
#[derive(Debug)]
pub(super) struct CsvReader {
    state: State,
    field: Vec<u8>,
    quoted: bool,
    record: Record,
    /// Whether the current record has any field or byte (an empty line is no record).
    started: bool,
}

impl Default for CsvReader {
    fn default() -> Self {
        CsvReader {
            state: State::Start,
            field: Vec::new(),
            quoted: false,
            record: Vec::new(),
            started: false,
        }
    }
}

impl CsvReader {
    fn end_field(&mut self) -> Result<(), String> {
        let bytes = std::mem::take(&mut self.field);
        let text = String::from_utf8(bytes)
            .map_err(|_| "the result file holds a value that is not UTF-8".to_string())?;
        let value = if self.quoted || !text.is_empty() {
            Some(text)
        } else {
            None
        };
        self.record.push(value);
        self.quoted = false;
        Ok(())
    }

    /// Ends a record at a line break (`eof`: at the end of the input). An empty line is the
    /// one NULL of a one-column record; nothing after the last line break is no record.
    fn end_record(&mut self, out: &mut Vec<Record>, eof: bool) -> Result<(), String> {
        if self.started || !eof {
            self.end_field()?;
            out.push(std::mem::take(&mut self.record));
        }
        self.started = false;
        Ok(())
    }

    /// Reads `bytes`, appending every record they complete to `out`.
    pub(super) fn feed(&mut self, bytes: &[u8], out: &mut Vec<Record>) -> Result<(), String> {
        for &b in bytes {
            if self.state == State::CarriageReturn {
                self.state = State::Start;
                if b == b'\n' {
                    continue;
                }
            }
            match (self.state, b) {
                (State::Quoted, b'"') => self.state = State::QuoteInQuoted,
                (State::Quoted, _) => self.field.push(b),
                (State::QuoteInQuoted, b'"') => {
                    self.field.push(b'"');
                    self.state = State::Quoted;
                }
                (State::Start, b'"') => {
                    self.started = true;
                    self.quoted = true;
                    self.state = State::Quoted;
                }
                (_, b',') => {
                    self.started = true;
                    self.end_field()?;
                    self.state = State::Start;
                }
                (_, b'\n') => {
                    self.end_record(out, false)?;
                    self.state = State::Start;
                }
                (_, b'\r') => {
                    self.end_record(out, false)?;
                    self.state = State::CarriageReturn;
                }
                (State::QuoteInQuoted, _) => {
                    return Err(format!(
                        "the result file has `{}` after a closing quote",
                        char::from(b).escape_default()
                    ))
                }
                (_, _) => {
                    self.started = true;
                    self.field.push(b);
                    self.state = State::Unquoted;
                }
            }
        }
        Ok(())
    }

    /// Ends the input: the last record when the file does not end with a line break.
    pub(super) fn finish(&mut self, out: &mut Vec<Record>) -> Result<(), String> {
        if self.state == State::Quoted {
            return Err("the result file ends inside a quoted value".into());
        }
        self.end_record(out, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_in_pieces(text: &[u8], piece: usize) -> Result<Vec<Record>, String> {
        let mut r = CsvReader::default();
        let mut out = Vec::new();
        for chunk in text.chunks(piece) {
            r.feed(chunk, &mut out)?;
        }
        r.finish(&mut out)?;
        Ok(out)
    }

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn quoted_values_nulls_and_line_breaks_in_any_split() {
        let text = "\"id\",\"name\",\"note\"\n\"1\",\"a \"\"b\"\", c\",\n\"2\",\"\",\"two\r\nlines\"\r\n\"3\",,\"ü\"";
        let want = vec![
            vec![s("id"), s("name"), s("note")],
            vec![s("1"), s("a \"b\", c"), None],
            vec![s("2"), s(""), s("two\r\nlines")],
            vec![s("3"), None, s("ü")],
        ];
        for piece in [1, 2, 3, 7, 1000] {
            assert_eq!(
                parse_in_pieces(text.as_bytes(), piece).unwrap(),
                want,
                "{piece}"
            );
        }
    }

    #[test]
    fn broken_files_are_errors_not_panics() {
        assert!(parse_in_pieces(b"\"a\"x\n", 3).is_err());
        assert!(parse_in_pieces(b"\"open", 2).is_err());
        assert!(parse_in_pieces(&[b'"', 0xff, b'"'], 1).is_err());
        assert_eq!(parse_in_pieces(b"", 1).unwrap(), Vec::<Record>::new());
        // One column: an empty line is its NULL.
        assert_eq!(
            parse_in_pieces(b"\"a\"\n\n\"x\"\n", 2).unwrap(),
            vec![vec![s("a")], vec![None], vec![s("x")]]
        );
    }
}

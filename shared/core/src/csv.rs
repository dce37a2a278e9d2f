//! RFC 4180 CSV as Salesforce's Bulk API 2.0 speaks it: a row writer for
//! uploads and an incremental (push) reader for result files, so neither
//! side needs a whole file in memory.
//!
//! Writer: comma delimiter, LF line ending (the job is created with
//! `lineEnding: LF`), a field is quoted when it holds a comma, a quote, CR or
//! LF, or starts/ends with a space; embedded quotes are doubled.
//!
//! Reader: LF or CRLF line endings, quoted fields with embedded delimiters,
//! quotes and newlines, a UTF-8 byte order mark, chunks split anywhere (even
//! inside a multi-byte character). A truncated file (an open quote at the
//! end) is an error, never a short read.

use std::fmt;

/// The value Bulk API 2.0 reads as "set this field to null". An empty cell
/// means "leave the field unchanged" on update.
pub const NULL_MARKER: &str = "#N/A";

/// Records larger than this are refused by the reader (Salesforce's own
/// limit is 400,000 characters per record).
pub const MAX_RECORD_BYTES: usize = 4 * 1024 * 1024;

fn needs_quoting(value: &str) -> bool {
    value.bytes().any(|b| matches!(b, b',' | b'"' | b'\n' | b'\r')) || value.starts_with(' ') || value.ends_with(' ')
}

/// Append one field (quoted when needed).
pub fn write_field(out: &mut Vec<u8>, value: &str) {
    if !needs_quoting(value) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(b'"');
    for &b in value.as_bytes() {
        if b == b'"' {
            out.push(b'"');
        }
        out.push(b);
    }
    out.push(b'"');
}

/// The number of bytes [`write_field`] appends for `value`.
pub fn field_len(value: &str) -> usize {
    if needs_quoting(value) { value.len() + 2 + value.bytes().filter(|&b| b == b'"').count() } else { value.len() }
}

/// Append one row: fields separated by commas, terminated by LF.
pub fn write_row<'a>(out: &mut Vec<u8>, fields: impl IntoIterator<Item = &'a str>) {
    for (i, f) in fields.into_iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_field(out, f);
    }
    out.push(b'\n');
}

/// Why a CSV stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CsvError {
    #[error("CSV record {record} is not valid UTF-8")]
    InvalidUtf8 { record: u64 },
    #[error("CSV record {record} has a character after a closing quote (malformed quoting)")]
    MalformedQuote { record: u64 },
    #[error("the CSV ends inside a quoted field of record {record} (the file is truncated)")]
    UnterminatedQuote { record: u64 },
    #[error("CSV record {record} is larger than {MAX_RECORD_BYTES} bytes")]
    RecordTooLarge { record: u64 },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    StartField,
    Unquoted,
    Quoted,
    /// A quote inside a quoted field: either an escaped quote or the end.
    QuoteInQuoted,
    /// A CR ended a record; an LF right after it belongs to it.
    AfterCr,
}

/// Incremental CSV reader: [`push`](CsvReader::push) chunks as they arrive,
/// then [`finish`](CsvReader::finish). Complete records are appended to the
/// caller's vector. Blank lines are skipped.
pub struct CsvReader {
    state: State,
    field: Vec<u8>,
    record: Vec<String>,
    record_bytes: usize,
    /// Whether anything (a byte or a delimiter) belongs to the current record.
    in_record: bool,
    /// 1-based number of the record being read (the header is record 1).
    number: u64,
    /// Bytes of a UTF-8 byte order mark matched at the very start, or
    /// `None` once past it.
    bom: Option<usize>,
}

const BOM: &[u8] = b"\xef\xbb\xbf";

impl Default for CsvReader {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for CsvReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CsvReader").field("state", &self.state).field("record", &self.number).finish_non_exhaustive()
    }
}

impl CsvReader {
    pub fn new() -> Self {
        CsvReader {
            state: State::StartField,
            field: Vec::new(),
            record: Vec::new(),
            record_bytes: 0,
            in_record: false,
            number: 1,
            bom: Some(0),
        }
    }

    /// Records completed so far (the header counts as one).
    pub fn records_read(&self) -> u64 {
        self.number - 1
    }

    fn end_field(&mut self) -> Result<(), CsvError> {
        let bytes = std::mem::take(&mut self.field);
        let s = String::from_utf8(bytes).map_err(|_| CsvError::InvalidUtf8 { record: self.number })?;
        self.record.push(s);
        Ok(())
    }

    fn end_record(&mut self, rows: &mut Vec<Vec<String>>) -> Result<(), CsvError> {
        if self.in_record {
            self.end_field()?;
            rows.push(std::mem::take(&mut self.record));
            self.number += 1;
        }
        self.record.clear();
        self.field.clear();
        self.record_bytes = 0;
        self.in_record = false;
        Ok(())
    }

    fn byte(&mut self, b: u8) -> Result<(), CsvError> {
        self.record_bytes += 1;
        if self.record_bytes > MAX_RECORD_BYTES {
            return Err(CsvError::RecordTooLarge { record: self.number });
        }
        self.field.push(b);
        Ok(())
    }

    /// Feed the next chunk; complete records are appended to `rows`.
    pub fn push(&mut self, chunk: &[u8], rows: &mut Vec<Vec<String>>) -> Result<(), CsvError> {
        for &b in chunk {
            if let Some(matched) = self.bom {
                if b == BOM[matched] {
                    self.bom = if matched + 1 == BOM.len() { None } else { Some(matched + 1) };
                    continue;
                }
                self.bom = None;
                for &replay in &BOM[..matched] {
                    self.step(replay, rows)?;
                }
            }
            self.step(b, rows)?;
        }
        Ok(())
    }

    fn step(&mut self, b: u8, rows: &mut Vec<Vec<String>>) -> Result<(), CsvError> {
        if self.state == State::AfterCr {
            self.state = State::StartField;
            if b == b'\n' {
                return Ok(());
            }
        }
        match self.state {
            State::StartField | State::Unquoted => match b {
                b'"' if self.state == State::StartField => {
                    self.in_record = true;
                    self.state = State::Quoted;
                }
                b',' => {
                    self.in_record = true;
                    self.end_field()?;
                    self.state = State::StartField;
                }
                b'\n' => {
                    self.end_record(rows)?;
                    self.state = State::StartField;
                }
                b'\r' => {
                    self.end_record(rows)?;
                    self.state = State::AfterCr;
                }
                _ => {
                    self.in_record = true;
                    self.byte(b)?;
                    self.state = State::Unquoted;
                }
            },
            State::Quoted => {
                if b == b'"' {
                    self.state = State::QuoteInQuoted;
                } else {
                    self.byte(b)?;
                }
            }
            State::QuoteInQuoted => match b {
                b'"' => {
                    self.byte(b'"')?;
                    self.state = State::Quoted;
                }
                b',' => {
                    self.end_field()?;
                    self.state = State::StartField;
                }
                b'\n' => {
                    self.end_record(rows)?;
                    self.state = State::StartField;
                }
                b'\r' => {
                    self.end_record(rows)?;
                    self.state = State::AfterCr;
                }
                _ => return Err(CsvError::MalformedQuote { record: self.number }),
            },
            State::AfterCr => {}
        }
        Ok(())
    }

    /// The end of the stream: completes a last record without a line ending.
    pub fn finish(&mut self, rows: &mut Vec<Vec<String>>) -> Result<(), CsvError> {
        if let Some(matched) = self.bom.take() {
            for &replay in &BOM[..matched] {
                self.step(replay, rows)?;
            }
        }
        if self.state == State::Quoted {
            return Err(CsvError::UnterminatedQuote { record: self.number });
        }
        self.end_record(rows)?;
        self.state = State::StartField;
        Ok(())
    }
}

/// Read a whole CSV document held in memory (tests, small files).
pub fn parse_all(data: &[u8]) -> Result<Vec<Vec<String>>, CsvError> {
    let mut r = CsvReader::new();
    let mut rows = Vec::new();
    r.push(data, &mut rows)?;
    r.finish(&mut rows)?;
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn row(fields: &[&str]) -> Vec<u8> {
        let mut out = Vec::new();
        write_row(&mut out, fields.iter().copied());
        out
    }

    #[test]
    fn writer_quotes_only_when_needed() {
        assert_eq!(row(&["a", "b c", ""]), b"a,b c,\n");
        assert_eq!(row(&["x,y"]), b"\"x,y\"\n");
        assert_eq!(row(&["say \"hi\""]), b"\"say \"\"hi\"\"\"\n");
        assert_eq!(row(&["two\nlines", "cr\r"]), b"\"two\nlines\",\"cr\r\"\n");
        assert_eq!(row(&[" padded "]), b"\" padded \"\n");
        assert_eq!(row(&[NULL_MARKER, "é☃"]), "#N/A,é☃\n".as_bytes());
        for v in ["", "plain", "a\"b", "x,\ny", " s"] {
            let mut out = Vec::new();
            write_field(&mut out, v);
            assert_eq!(out.len(), field_len(v), "{v:?}");
        }
    }

    #[test]
    fn reader_handles_salesforce_result_files() {
        let data = "\u{feff}\"sf__Id\",\"sf__Error\",Name\r\n\"\",\"REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --\",\"\"\r\n\"001\",\"X:y, z\",\"multi\nline \"\"q\"\"\"\r\n";
        let rows = parse_all(data.as_bytes()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0], vec!["sf__Id", "sf__Error", "Name"]);
        assert_eq!(rows[1][1], "REQUIRED_FIELD_MISSING:Required fields are missing: [Name]:Name --");
        assert_eq!(rows[1][2], "");
        assert_eq!(rows[2][2], "multi\nline \"q\"");
    }

    #[test]
    fn blank_lines_and_missing_final_newline() {
        let rows = parse_all(b"a,b\n\n1,2").unwrap();
        assert_eq!(rows, vec![vec!["a", "b"], vec!["1", "2"]]);
        assert_eq!(parse_all(b"").unwrap(), Vec::<Vec<String>>::new());
        assert_eq!(parse_all(b",\n").unwrap(), vec![vec!["", ""]]);
    }

    #[test]
    fn truncated_and_malformed_input_is_an_error() {
        assert_eq!(parse_all(b"a,\"open\n"), Err(CsvError::UnterminatedQuote { record: 1 }));
        assert_eq!(parse_all(b"h\n\"x\"y\n"), Err(CsvError::MalformedQuote { record: 2 }));
        assert_eq!(parse_all(b"h\n\xff\xfe\n"), Err(CsvError::InvalidUtf8 { record: 2 }));
    }

    #[test]
    fn multibyte_characters_split_across_chunks() {
        let data = "k,v\n1,é☃😀\n".as_bytes();
        for cut in 0..data.len() {
            let mut r = CsvReader::new();
            let mut rows = Vec::new();
            r.push(&data[..cut], &mut rows).unwrap();
            r.push(&data[cut..], &mut rows).unwrap();
            r.finish(&mut rows).unwrap();
            assert_eq!(rows[1][1], "é☃😀", "cut at {cut}");
        }
    }

    fn field() -> impl Strategy<Value = String> {
        prop_oneof![
            "[a-z0-9 ]{0,8}",
            proptest::string::string_regex("[a-z,\"\r\n é☃😀#/A]{0,12}").unwrap(),
            any::<String>(),
        ]
    }

    proptest! {
        /// Whatever the values and wherever the stream is cut, the reader
        /// gives back exactly the rows the writer wrote.
        #[test]
        fn write_then_read_round_trips(
            rows in proptest::collection::vec(proptest::collection::vec(field(), 1..5), 1..6),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            // A row made of one empty field is a blank line in CSV: not representable.
            prop_assume!(rows.iter().all(|r| !(r.len() == 1 && r[0].is_empty())));
            // A leading BOM in the very first field would be read as a byte order mark.
            prop_assume!(!rows[0][0].starts_with('\u{feff}'));
            let mut data = Vec::new();
            for r in &rows {
                write_row(&mut data, r.iter().map(String::as_str));
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (data.len() + 1)).collect();
            points.sort_unstable();
            let mut reader = CsvReader::new();
            let mut got = Vec::new();
            let mut at = 0;
            for p in points {
                reader.push(&data[at..p], &mut got).unwrap();
                at = p;
            }
            reader.push(&data[at..], &mut got).unwrap();
            reader.finish(&mut got).unwrap();
            prop_assert_eq!(got, rows);
        }
    }
}

//! Reading one CDM table from delimited text (a CSV/TSV file, or PostgreSQL's `COPY … TO STDOUT`).
//!
//! The header names columns in any order and case; comma or tab is detected from it. Comma files
//! are read with CSV quoting; tab files without (Athena's vocabulary files are unquoted and carry `"`
//! in concept names) unless asked. Every data row is parsed into typed columns; a bad row is skipped
//! and reported with `source:line:column`, or, in strict mode, ends the ingest. Only the text of kept
//! text columns is ever decoded (in the file's encoding); NULL tokens such as `NA` are NULL.

use std::borrow::Cow;
use std::io::{BufRead, BufReader, Read};

use qiao_cdm::{date, ColType, Column, RawTable, TableSpec};

use crate::report::{Problem, ProblemKind, TableReport};
use crate::IngestError;

/// The character encoding of delimited text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TextEncoding {
    Utf8,
    Gb18030,
    Windows1252,
    /// UTF-8 if the file's first megabyte is UTF-8, else GB18030 if it decodes as such, else
    /// Windows-1252; the one used is reported.
    #[default]
    Auto,
}

impl std::str::FromStr for TextEncoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().replace('_', "-").as_str() {
            "utf-8" | "utf8" => Ok(TextEncoding::Utf8),
            "gb18030" | "gbk" | "gb2312" => Ok(TextEncoding::Gb18030),
            "windows-1252" | "cp1252" | "latin1" | "iso-8859-1" => Ok(TextEncoding::Windows1252),
            "auto" => Ok(TextEncoding::Auto),
            other => Err(format!(
                "unknown encoding {other:?} (utf-8, gb18030, windows-1252 or auto)"
            )),
        }
    }
}

/// The NULL tokens read as NULL by default (besides an empty field).
pub const DEFAULT_NULL_TOKENS: [&str; 4] = ["NA", "NULL", "\\N", "null"];

/// How delimited text is read and what counts as fatal.
#[derive(Debug, Clone)]
pub struct ReadOptions {
    /// Fail on the first bad row instead of skipping it.
    pub strict: bool,
    /// Quote processing for tab-delimited text too (comma-delimited text is always quoted).
    pub quote_tabs: bool,
    /// Field values read as NULL (after trimming) in every non-text column and in optional text
    /// columns; a required text column keeps them verbatim (`NA` can be a concept code).
    pub null_tokens: Vec<String>,
    pub encoding: TextEncoding,
    /// A row whose quoted field runs across more lines than this is reported (an unterminated quote).
    pub max_field_lines: u64,
    /// Locate problems by the row's primary key instead of its line (PostgreSQL: COPY's lines
    /// mean nothing to the user).
    pub locate_by_key: bool,
}

impl Default for ReadOptions {
    fn default() -> Self {
        ReadOptions {
            strict: false,
            quote_tabs: false,
            null_tokens: DEFAULT_NULL_TOKENS.iter().map(|s| s.to_string()).collect(),
            encoding: TextEncoding::Auto,
            max_field_lines: 100,
            locate_by_key: false,
        }
    }
}

/// The encoding a file is decoded with, once resolved.
#[derive(Clone, Copy)]
struct Decoder {
    encoding: &'static encoding_rs::Encoding,
}

impl Decoder {
    /// Decodes one kept text value; `Err` carries the lossy text when some bytes were invalid.
    fn decode<'a>(&self, bytes: &'a [u8]) -> Result<Cow<'a, str>, Cow<'a, str>> {
        if self.encoding == encoding_rs::UTF_8 {
            return std::str::from_utf8(bytes)
                .map(Cow::Borrowed)
                .map_err(|_| String::from_utf8_lossy(bytes));
        }
        let (text, had_errors) = self.encoding.decode_without_bom_handling(bytes);
        if had_errors {
            Err(text)
        } else {
            Ok(text)
        }
    }
}

/// Resolves `auto` from the first buffer of the input; returns the encoding and how it was chosen.
fn resolve_encoding(wanted: TextEncoding, sample: &[u8]) -> (Decoder, String) {
    use encoding_rs::{GB18030, UTF_8, WINDOWS_1252};
    let (encoding, how) = match wanted {
        TextEncoding::Utf8 => (UTF_8, "given"),
        TextEncoding::Gb18030 => (GB18030, "given"),
        TextEncoding::Windows1252 => (WINDOWS_1252, "given"),
        TextEncoding::Auto => {
            // A sample may end inside a character: judge all but its last 3 bytes' completeness.
            let utf8 = match std::str::from_utf8(sample) {
                Ok(_) => true,
                Err(e) => e.error_len().is_none(),
            };
            let cut = &sample[..sample.len().saturating_sub(3)];
            if utf8 {
                (UTF_8, "detected")
            } else if GB18030
                .decode_without_bom_handling_and_without_replacement(cut)
                .is_some()
            {
                (GB18030, "detected")
            } else {
                (WINDOWS_1252, "detected")
            }
        }
    };
    (Decoder { encoding }, format!("{} ({how})", encoding.name()))
}

/// Where a source column goes.
#[derive(Clone, Copy)]
enum Slot {
    /// Kept: index into the RawTable's columns, and its type.
    Kept(usize, ColType, bool),
    /// A known CDM column Qiao does not store, or an extra column: not parsed.
    Ignored,
}

/// Reads a whole table. `on_bytes` is told how many bytes were consumed, for progress.
pub fn read_table(
    spec: &'static TableSpec,
    source: &str,
    input: impl Read,
    opts: &ReadOptions,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(RawTable, TableReport), IngestError> {
    let mut whole = RawTable::new(spec);
    let report = read_table_chunks(
        spec,
        source,
        input,
        opts,
        on_bytes,
        &Chunks::whole(),
        &mut |chunk| {
            whole.append(chunk);
            Ok(())
        },
    )?;
    Ok((whole, report))
}

/// How a table is handed on while it is read: in chunks of at most `rows` rows, and where the
/// duplicate-key check spills the keys beyond `key_budget` bytes.
pub struct Chunks {
    pub rows: usize,
    pub spill: qiao_store::spill::SpillDir,
    pub key_budget: usize,
}

impl Chunks {
    /// One chunk, all in memory.
    pub fn whole() -> Chunks {
        Chunks {
            rows: usize::MAX,
            spill: qiao_store::spill::SpillDir::beside(&std::env::temp_dir().join("qiao-ingest")),
            key_budget: usize::MAX / 2,
        }
    }
}

/// Reads a table, giving its rows to `sink` in chunks as they are read (see [`Chunks`]).
pub fn read_table_chunks(
    spec: &'static TableSpec,
    source: &str,
    input: impl Read,
    opts: &ReadOptions,
    on_bytes: &mut dyn FnMut(u64),
    chunks: &Chunks,
    sink: &mut dyn FnMut(RawTable) -> Result<(), IngestError>,
) -> Result<TableReport, IngestError> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let sniffed = sniff_delimiter(&mut input).map_err(|e| IngestError::Unreadable {
        path: source.into(),
        detail: e.to_string(),
    })?;
    let Some((delimiter, decoder, encoding)) = sniffed.map(|(d, sample)| {
        let (decoder, name) = resolve_encoding(opts.encoding, &sample);
        (d, decoder, name)
    }) else {
        return Err(IngestError::EmptyTable {
            file: source.into(),
            table: spec.name,
        });
    };
    let quoting = delimiter != b'\t' || opts.quote_tabs;
    // Records end at `\n` only: a CRLF file's `\r` stays in the last field (trimmed with the
    // value), so that every record's line number counts its own line break (with CSV's
    // CRLF terminator the `\n` is read as the start of the next record, one line early).
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .quoting(quoting)
        .has_headers(true)
        .flexible(true)
        .buffer_capacity(1 << 20)
        .from_reader(input);
    let header = rdr
        .byte_headers()
        .map_err(|e| IngestError::Unreadable {
            path: source.into(),
            detail: e.to_string(),
        })?
        .clone();

    let mut table = RawTable::new(spec);
    let mut report = TableReport {
        source: source.into(),
        encoding,
        ..TableReport::default()
    };
    let mut slots = Vec::with_capacity(header.len());
    let mut seen = vec![false; spec.columns.len()];
    for (i, raw) in header.iter().enumerate() {
        let name = String::from_utf8_lossy(raw)
            .trim()
            .trim_start_matches('\u{feff}')
            .trim_matches('"')
            .to_ascii_lowercase();
        match spec.column_index(&name) {
            Some(ci) => {
                if seen[ci] {
                    return Err(IngestError::DuplicateColumn {
                        file: source.into(),
                        column: name,
                    });
                }
                seen[ci] = true;
                let col = &spec.columns[ci];
                slots.push(
                    match table.columns.iter().position(|(n, _)| *n == col.name) {
                        Some(k) => Slot::Kept(k, col.ty, col.required),
                        None => Slot::Ignored,
                    },
                );
            }
            None => {
                if !name.is_empty() || i + 1 < header.len() {
                    report.extra_columns.push(if name.is_empty() {
                        format!("#{}", i + 1)
                    } else {
                        name
                    });
                }
                slots.push(Slot::Ignored);
            }
        }
    }
    for (ci, col) in spec.columns.iter().enumerate() {
        if !seen[ci] && col.required {
            let hint = if header.len() == 1 {
                " (is the file comma- or tab-delimited?)"
            } else {
                ""
            };
            return Err(IngestError::MissingColumn {
                file: source.into(),
                table: spec.name,
                column: col.name,
                hint,
            });
        }
        if !seen[ci] && col.is_kept() {
            report.absent_columns.push(col.name.to_string());
        }
    }

    // Kept columns the source lacks: NULL in every row.
    let absent: Vec<usize> = (0..table.columns.len())
        .filter(|k| {
            !slots
                .iter()
                .any(|s| matches!(s, Slot::Kept(j, ..) if j == k))
        })
        .collect();
    let key_field = key_column(spec).and_then(|k| {
        let i = header.iter().position(|h| {
            String::from_utf8_lossy(h)
                .trim()
                .trim_start_matches('\u{feff}')
                .trim_matches('"')
                .eq_ignore_ascii_case(k)
        })?;
        Some((i, k))
    });
    let ctx = RowContext {
        key_field: key_field.filter(|_| opts.locate_by_key),
        slots: &slots,
        absent: &absent,
        source,
        header: &header,
        decoder,
        null_tokens: &opts.null_tokens,
    };
    let mut keys = DuplicateKeys::new(spec, chunks);
    let mut record = csv::ByteRecord::new();
    let mut last_pos = 0u64;
    let mut lines: Vec<u64> = Vec::new();
    let mut flags: Vec<Problem> = Vec::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The csv reader only fails on I/O errors here (flexible, byte records).
                return Err(IngestError::Unreadable {
                    path: source.into(),
                    detail: read_error(&e),
                });
            }
        }
        let pos = record.position().map_or(0, |p| p.byte());
        if pos >= last_pos + (1 << 20) {
            on_bytes(pos - last_pos);
            last_pos = pos;
        }
        if record.len() == 1 && trim(&record[0]).is_empty() {
            continue; // a blank CRLF line
        }
        report.rows_read += 1;
        let line = record.position().map_or(0, |p| p.line());
        // The line after the record: more than one past its first line when a quoted field
        // holds line breaks.
        let next_line = rdr.position().line();
        let result = match runaway_quote(
            &record,
            line,
            next_line,
            (quoting, delimiter, slots.len()),
            opts.max_field_lines,
        ) {
            Some(detail) => Err(ctx.problem(&record, ProblemKind::RunawayQuote, line, 0, detail)),
            None => ctx.parse_row(&record, &mut table, line, next_line, &mut flags),
        };
        if let Err(problem) = result {
            if opts.strict {
                return Err(IngestError::Strict(Box::new(problem)));
            }
            report.record(problem);
            flags.clear();
            continue;
        }
        for flag in flags.drain(..) {
            if opts.strict && flag.kind == ProblemKind::NotUtf8 {
                return Err(IngestError::Strict(Box::new(flag)));
            }
            report.flag(flag);
        }
        lines.push(line);
        if table.rows() >= chunks.rows {
            report.rows_kept += table.rows() as u64;
            keys.add(&table, &lines).map_err(spill_err)?;
            lines.clear();
            sink(std::mem::replace(&mut table, RawTable::new(spec)))?;
        }
    }
    let end = rdr.position().byte();
    on_bytes(end.saturating_sub(last_pos));
    report.bytes = end;

    report.rows_kept += table.rows() as u64;
    keys.add(&table, &lines).map_err(spill_err)?;
    sink(table)?;
    keys.flag(source, opts, &mut report).map_err(|e| match e {
        KeyError::Strict(p) => IngestError::Strict(p),
        KeyError::Io(e) => spill_err(e),
    })?;
    Ok(report)
}

fn spill_err(e: std::io::Error) -> IngestError {
    IngestError::Unreadable {
        path: "temporary file".into(),
        detail: e.to_string(),
    }
}

/// The message of a failed read, down to its cause (e.g. the server's message when a PostgreSQL
/// COPY stream breaks: `io::Error` shows only the driver's "db error" and skips it as a source).
fn read_error(e: &csv::Error) -> String {
    match e.kind() {
        csv::ErrorKind::Io(io) => match io.get_ref() {
            Some(inner) => crate::postgres_source::error_chain(inner),
            None => io.to_string(),
        },
        _ => crate::postgres_source::error_chain(e),
    }
}

/// Detects the delimiter from the header line: tab if it has more tabs than commas, else comma.
/// Returns it with a sample of the input's first bytes (for the encoding), or None for an input
/// with no header line at all.
fn sniff_delimiter<R: Read>(input: &mut BufReader<R>) -> std::io::Result<Option<(u8, Vec<u8>)>> {
    let buf = input.fill_buf()?;
    if buf.is_empty() {
        return Ok(None);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let tabs = line.iter().filter(|&&b| b == b'\t').count();
    let commas = line.iter().filter(|&&b| b == b',').count();
    let sample = buf[..buf.len().min(1 << 20)].to_vec();
    Ok(Some((if tabs > commas { b'\t' } else { b',' }, sample)))
}

/// A quoted field that runs across more than `max_lines` lines, to the end of the input (its
/// record's last field then ends with the input's final line break), or over lines that look like
/// whole rows (as many delimiters as the header): the detail, or None.
fn runaway_quote(
    record: &csv::ByteRecord,
    line: u64,
    next_line: u64,
    (quoting, delimiter, fields): (bool, u8, usize),
    max_lines: u64,
) -> Option<String> {
    if !quoting || next_line <= line + 1 {
        return None;
    }
    let span = next_line - line;
    let last = record.iter().next_back().unwrap_or_default();
    let last = last.strip_suffix(b"\r").unwrap_or(last);
    if last.ends_with(b"\n") || last.ends_with(b"\r") {
        return Some(format!(
            "a quoted field opened on line {line} runs to the end of the input (an unterminated quote?)"
        ));
    }
    let holds_rows = record.iter().any(|f| {
        f.split(|&b| b == b'\n')
            .skip(1)
            .any(|l| l.iter().filter(|&&b| b == delimiter).count() + 1 >= fields && fields > 1)
    });
    if holds_rows {
        return Some(format!(
            "a quoted field runs across lines {line}-{} that look like rows of their own (an \
             unterminated quote?{})",
            next_line - 1,
            if delimiter == b'\t' {
                " tab files are read without quotes unless --quote"
            } else {
                ""
            }
        ));
    }
    (span > max_lines).then(|| {
        format!(
            "a quoted field runs across {span} lines ({line}-{}), more than {max_lines} (an unterminated quote?)",
            next_line - 1
        )
    })
}

/// What a row is parsed against.
struct RowContext<'a> {
    /// The primary key's field and name, when problems are located by key.
    key_field: Option<(usize, &'static str)>,
    slots: &'a [Slot],
    absent: &'a [usize],
    source: &'a str,
    header: &'a csv::ByteRecord,
    decoder: Decoder,
    null_tokens: &'a [String],
}

impl RowContext<'_> {
    fn problem(
        &self,
        record: &csv::ByteRecord,
        kind: ProblemKind,
        line: u64,
        column: usize,
        detail: String,
    ) -> Problem {
        let field = match column.checked_sub(1).and_then(|c| self.header.get(c)) {
            Some(name) => String::from_utf8_lossy(name).to_ascii_lowercase(),
            None => String::new(),
        };
        let key = self.key_field.map(|(i, name)| {
            let value = record
                .get(i)
                .map(String::from_utf8_lossy)
                .unwrap_or_default();
            format!("{name}={value}")
        });
        Problem {
            kind,
            source: self.source.to_string(),
            line,
            column,
            field,
            detail,
            key,
        }
    }

    fn is_null_token(&self, v: &[u8]) -> bool {
        self.null_tokens.iter().any(|t| t.as_bytes() == v)
    }

    /// Parses one record into the table. On a problem, leaves the table unchanged and returns it;
    /// problems with a row that is kept go to `flags`.
    fn parse_row(
        &self,
        record: &csv::ByteRecord,
        table: &mut RawTable,
        line: u64,
        next_line: u64,
        flags: &mut Vec<Problem>,
    ) -> Result<(), Problem> {
        let n = self.slots.len();
        if record.len() > n && record.iter().skip(n).all(|f| trim(f).is_empty()) {
            flags.push(self.problem(
                record,
                ProblemKind::TrailingEmptyFields,
                line,
                0,
                format!(
                    "{} empty field(s) after the header's {n} ignored",
                    record.len() - n
                ),
            ));
        } else if record.len() != n {
            let span = if next_line > line + 1 {
                format!(
                    "; the row spans lines {line}-{} (a quote opened inside a field?)",
                    next_line - 1
                )
            } else {
                String::new()
            };
            return Err(self.problem(
                record,
                ProblemKind::WrongFieldCount,
                line,
                0,
                format!("expected {n} fields, found {}{span}", record.len()),
            ));
        }
        let rows = table.rows();
        for (i, (field, slot)) in record.iter().zip(self.slots).enumerate() {
            let Slot::Kept(k, ty, required) = *slot else {
                continue;
            };
            let col = &mut table.columns[k].1;
            let value = trim(field);
            let is_null = value.is_empty()
                || ((ty != ColType::Text || !required) && self.is_null_token(value));
            let result = if is_null {
                if required {
                    Err((ProblemKind::MissingRequired, String::new()))
                } else {
                    col.push_null();
                    Ok(())
                }
            } else if let (Column::Text(c), ColType::Text) = (&mut *col, ty) {
                match self.decoder.decode(value) {
                    Ok(text) => c.push(Some(&text)),
                    Err(lossy) => {
                        c.push(Some(&lossy));
                        flags.push(self.problem(
                            record,
                            ProblemKind::NotUtf8,
                            line,
                            i + 1,
                            format!(
                                "bytes not valid in {}, kept with U+FFFD (give --encoding)",
                                self.decoder.encoding.name()
                            ),
                        ));
                    }
                }
                Ok(())
            } else if ty == ColType::Date && is_year_zero_or_bc(value) {
                Err((
                    ProblemKind::Unparseable,
                    format!(
                        "{:?}: year 0 and BC dates are not valid CDM dates",
                        String::from_utf8_lossy(value)
                    ),
                ))
            } else {
                push_value(col, ty, value).map_err(|()| {
                    (
                        ProblemKind::Unparseable,
                        format!(
                            "{:?} is not a {}",
                            String::from_utf8_lossy(value),
                            type_name(ty)
                        ),
                    )
                })
            };
            if let Err((kind, detail)) = result {
                for (_, c) in table.columns.iter_mut() {
                    c.truncate(rows);
                }
                flags.clear();
                return Err(self.problem(record, kind, line, i + 1, detail));
            }
        }
        for &k in self.absent {
            table.columns[k].1.push_null();
        }
        Ok(())
    }
}

/// `0000-01-01`, `00000101` or PostgreSQL's `0044-03-15 BC`: not a date of the proleptic Gregorian
/// calendar a CDM uses (year 0 does not exist; BC dates would silently read as AD).
fn is_year_zero_or_bc(v: &[u8]) -> bool {
    v.starts_with(b"0000")
        || v.len() >= 2 && v[v.len() - 2..].eq_ignore_ascii_case(b"BC")
        || v.windows(3).any(|w| w.eq_ignore_ascii_case(b" BC"))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

fn type_name(ty: ColType) -> &'static str {
    match ty {
        ColType::Id => "64-bit integer id",
        ColType::Concept => "concept id",
        ColType::Int => "32-bit integer",
        ColType::Date => "date (YYYY-MM-DD or YYYYMMDD)",
        ColType::Float => "number",
        ColType::Text | ColType::Skip => "text",
    }
}

fn push_value(col: &mut Column, ty: ColType, v: &[u8]) -> Result<(), ()> {
    match (col, ty) {
        (Column::Id(c), _) => c.push(parse_int(v).ok_or(())?),
        (Column::I32(c), ColType::Date) => c.push(date::parse(v).ok_or(())?),
        (Column::I32(c), _) => {
            let x = parse_int(v).ok_or(())?;
            c.push(i32::try_from(x).ok().filter(|&x| x != i32::MIN).ok_or(())?)
        }
        (Column::Float(c), _) => {
            let s = std::str::from_utf8(v).map_err(|_| ())?;
            c.push(s.parse::<f64>().ok().filter(|x| x.is_finite()).ok_or(())?)
        }
        (Column::Text(c), _) => c.push(Some(std::str::from_utf8(v).map_err(|_| ())?)),
    }
    Ok(())
}

/// An integer, also written as `123.0` (some exporters write integer columns as floats).
fn parse_int(v: &[u8]) -> Option<i64> {
    let (neg, digits) = match v.first()? {
        b'-' => (true, &v[1..]),
        b'+' => (false, &v[1..]),
        _ => (false, v),
    };
    let (int, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(p) => (&digits[..p], &digits[p + 1..]),
        None => (digits, &[][..]),
    };
    if int.is_empty() || !frac.iter().all(|&b| b == b'0') {
        return None;
    }
    let mut x: i64 = 0;
    for &b in int {
        if !b.is_ascii_digit() {
            return None;
        }
        x = x.checked_mul(10)?.checked_add((b - b'0') as i64)?;
    }
    let x = if neg { -x } else { x };
    (x != i64::MIN).then_some(x)
}

/// The column that identifies a row, if the table has a single-column key.
fn key_column(spec: &TableSpec) -> Option<&'static str> {
    match spec.name {
        "death" => Some("person_id"),
        "concept" => Some("concept_id"),
        "concept_ancestor" | "concept_relationship" => None,
        _ => spec
            .event
            .as_ref()
            .and_then(|e| e.pk)
            .or(Some(spec.columns[0].name)),
    }
}

/// Finds every row whose key was seen on an earlier line (kept: see [`ProblemKind::DuplicateKey`]):
/// the keys with their row and line are sorted externally, so memory stays bounded.
struct DuplicateKeys {
    key: Option<&'static str>,
    column: usize,
    rows: u64,
    sorter: qiao_store::spill::Sorter<[i64; 3]>,
}

enum KeyError {
    Strict(Box<Problem>),
    Io(std::io::Error),
}

impl DuplicateKeys {
    fn new(spec: &'static TableSpec, chunks: &Chunks) -> Self {
        let key = key_column(spec);
        DuplicateKeys {
            key,
            column: key.and_then(|k| spec.column_index(k)).map_or(0, |i| i + 1),
            rows: 0,
            sorter: qiao_store::spill::Sorter::new(&chunks.spill, chunks.key_budget),
        }
    }

    /// Adds a chunk's keys (`lines`: each row's line).
    fn add(&mut self, table: &RawTable, lines: &[u64]) -> std::io::Result<()> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let base = self.rows;
        self.rows += table.rows() as u64;
        let mut push = |r: usize, k: i64| {
            let line = lines.get(r).copied().unwrap_or(0);
            self.sorter.push([k, (base + r as u64) as i64, line as i64])
        };
        match table.column(key) {
            Some(Column::Id(v)) => v.iter().enumerate().try_for_each(|(r, &k)| push(r, k)),
            Some(Column::I32(v)) => v
                .iter()
                .enumerate()
                .try_for_each(|(r, &k)| push(r, k as i64)),
            _ => Ok(()),
        }
    }

    /// Reports the rows whose key an earlier row has, in row order.
    fn flag(
        self,
        source: &str,
        opts: &ReadOptions,
        report: &mut TableReport,
    ) -> Result<(), KeyError> {
        let Some(key) = self.key else {
            return Ok(());
        };
        let mut dups: Vec<[i64; 3]> = Vec::new();
        let mut last: Option<i64> = None;
        self.sorter
            .sorted(|[k, r, line]| {
                if last == Some(k) {
                    dups.push([r, k, line]);
                }
                last = Some(k);
                Ok(())
            })
            .map_err(KeyError::Io)?;
        dups.sort_unstable();
        for [_, k, line] in dups {
            let problem = Problem {
                kind: ProblemKind::DuplicateKey,
                source: source.into(),
                line: line as u64,
                column: self.column,
                field: key.into(),
                detail: format!("{key} {k} already seen"),
                key: opts.locate_by_key.then(|| format!("{key}={k}")),
            };
            if opts.strict {
                return Err(KeyError::Strict(Box::new(problem)));
            }
            report.flag(problem);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_accept_float_spelling_but_not_fractions() {
        assert_eq!(parse_int(b"42"), Some(42));
        assert_eq!(parse_int(b"-7"), Some(-7));
        assert_eq!(parse_int(b"42.000"), Some(42));
        assert_eq!(parse_int(b"42.5"), None);
        assert_eq!(parse_int(b"4x"), None);
        assert_eq!(parse_int(b"99999999999999999999"), None);
        assert_eq!(parse_int(b""), None);
        assert_eq!(parse_int(b"-"), None);
    }
}

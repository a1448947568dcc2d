//! Reading one CDM table from delimited text (a CSV/TSV file, or PostgreSQL's `COPY … TO STDOUT`).
//!
//! The header names columns in any order and case; comma or tab is detected from it. Every data row
//! is parsed into typed columns; a bad row is skipped and reported with `source:line:column`, or, in
//! strict mode, ends the ingest.

use std::io::{BufRead, BufReader, Read};

use qiao_cdm::{date, ColType, Column, RawTable, TableSpec};

use crate::report::{Problem, ProblemKind, TableReport};
use crate::IngestError;

/// Options that change what counts as fatal.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Fail on the first bad row instead of skipping it.
    pub strict: bool,
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
    opts: ReadOptions,
    on_bytes: &mut dyn FnMut(u64),
) -> Result<(RawTable, TableReport), IngestError> {
    let mut input = BufReader::with_capacity(1 << 20, input);
    let delimiter = sniff_delimiter(&mut input).map_err(|e| IngestError::Unreadable {
        path: source.into(),
        detail: e.to_string(),
    })?;
    let Some(delimiter) = delimiter else {
        return Err(IngestError::EmptyTable {
            file: source.into(),
            table: spec.name,
        });
    };
    let mut rdr = csv::ReaderBuilder::new()
        .delimiter(delimiter)
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
    let mut record = csv::ByteRecord::new();
    let mut last_pos = 0u64;
    let mut lines: Vec<u64> = Vec::new();
    loop {
        match rdr.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                // The csv reader only fails on I/O errors here (flexible, byte records).
                return Err(IngestError::Unreadable {
                    path: source.into(),
                    detail: e.to_string(),
                });
            }
        }
        let pos = record.position().map_or(0, |p| p.byte());
        if pos >= last_pos + (1 << 20) {
            on_bytes(pos - last_pos);
            last_pos = pos;
        }
        report.rows_read += 1;
        let line = record.position().map_or(0, |p| p.line());
        if let Some(problem) =
            parse_row(&record, &slots, &absent, &mut table, source, line, &header)
        {
            if opts.strict {
                return Err(IngestError::Strict(Box::new(problem)));
            }
            report.record(problem);
            continue;
        }
        lines.push(line);
    }
    let end = rdr.position().byte();
    on_bytes(end.saturating_sub(last_pos));
    report.bytes = end;

    flag_duplicate_keys(spec, &table, &lines, source, opts, &mut report)?;
    report.rows_kept = table.rows() as u64;
    Ok((table, report))
}

/// Detects the delimiter from the header line: tab if it has more tabs than commas, else comma.
/// Returns None for an input with no header line at all.
fn sniff_delimiter<R: Read>(input: &mut BufReader<R>) -> std::io::Result<Option<u8>> {
    let buf = input.fill_buf()?;
    if buf.is_empty() {
        return Ok(None);
    }
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(buf);
    let tabs = line.iter().filter(|&&b| b == b'\t').count();
    let commas = line.iter().filter(|&&b| b == b',').count();
    Ok(Some(if tabs > commas { b'\t' } else { b',' }))
}

/// Parses one record into the table; on a problem, leaves the table unchanged and returns it.
fn parse_row(
    record: &csv::ByteRecord,
    slots: &[Slot],
    absent: &[usize],
    table: &mut RawTable,
    source: &str,
    line: u64,
    header: &csv::ByteRecord,
) -> Option<Problem> {
    let problem = |kind, column: usize, detail: String| {
        let field = if column == 0 {
            String::new()
        } else {
            String::from_utf8_lossy(&header[column - 1]).to_ascii_lowercase()
        };
        Problem {
            kind,
            source: source.to_string(),
            line,
            column,
            field,
            detail,
        }
    };
    if record.len() != slots.len() {
        return Some(problem(
            ProblemKind::WrongFieldCount,
            0,
            format!("expected {} fields, found {}", slots.len(), record.len()),
        ));
    }
    if std::str::from_utf8(record.as_slice()).is_err() {
        let col = record
            .iter()
            .position(|f| std::str::from_utf8(f).is_err())
            .map_or(0, |i| i + 1);
        return Some(problem(ProblemKind::NotUtf8, col, String::new()));
    }
    let rows = table.rows();
    for (i, (field, slot)) in record.iter().zip(slots).enumerate() {
        let Slot::Kept(k, ty, required) = *slot else {
            continue;
        };
        let col = &mut table.columns[k].1;
        let value = trim(field);
        let result = if value.is_empty() {
            if required {
                Err((ProblemKind::MissingRequired, String::new()))
            } else {
                col.push_null();
                Ok(())
            }
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
            return Some(problem(kind, i + 1, detail));
        }
    }
    for &k in absent {
        table.columns[k].1.push_null();
    }
    None
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

/// Reports every row whose key was seen on an earlier line (kept: see [`ProblemKind::DuplicateKey`]).
fn flag_duplicate_keys(
    spec: &'static TableSpec,
    table: &RawTable,
    lines: &[u64],
    source: &str,
    opts: ReadOptions,
    report: &mut TableReport,
) -> Result<(), IngestError> {
    let Some(key) = key_column(spec) else {
        return Ok(());
    };
    let keys: Vec<i64> = match table.column(key) {
        Some(Column::Id(v)) => v.clone(),
        Some(Column::I32(v)) => v.iter().map(|&x| x as i64).collect(),
        _ => return Ok(()),
    };
    let mut order: Vec<u32> = (0..keys.len() as u32).collect();
    order.sort_unstable_by_key(|&r| (keys[r as usize], r));
    let mut dup = vec![false; keys.len()];
    let mut any = false;
    for w in order.windows(2) {
        if keys[w[0] as usize] == keys[w[1] as usize] {
            dup[w[1] as usize] = true;
            any = true;
        }
    }
    if !any {
        return Ok(());
    }
    let column = spec.column_index(key).map_or(0, |i| i + 1);
    for (r, _) in dup.iter().enumerate().filter(|(_, &d)| d) {
        let problem = Problem {
            kind: ProblemKind::DuplicateKey,
            source: source.into(),
            line: lines.get(r).copied().unwrap_or(0),
            column,
            field: key.into(),
            detail: format!("{key} {} already seen", keys[r]),
        };
        if opts.strict {
            return Err(IngestError::Strict(Box::new(problem)));
        }
        report.flag(problem);
    }
    Ok(())
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

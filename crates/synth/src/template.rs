//! A source table compiled for fast re-emission: each row is its CSV text with "holes" where the
//! values that change per copy (ids, dates, birth fields) go. Writing a copy is then a memcpy of the
//! literal pieces plus integer/date formatting of the holes.

use std::path::{Path, PathBuf};

use qiao_cdm::date::{self, Day};
use qiao_cdm::{ColType, TableKind, TableSpec};

use crate::error::{csv_err, Error, Result};

/// NULL in a hole.
pub(crate) const NULL: i64 = i64::MIN;

/// Id columns that point into reference tables (copied unchanged), so they are never offset.
pub const UNCHANGED_ID_COLUMNS: &[&str] = &["provider_id", "care_site_id", "location_id"];

/// Which values become holes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Only offset ids; dates stay as written (exact replicas).
    Replicate,
    /// Offset ids and shift every date (and the birth fields of `person`).
    Shift,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hole {
    /// An id: written as `value + id offset`.
    Id,
    /// A day: written as `YYYY-MM-DD` of `value + day shift` (a datetime's time part follows as literal).
    Date,
    BirthYear,
    BirthMonth,
    BirthDay,
}

/// What to do with a date-like value that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BadDate {
    /// A schema date column: report the file and line.
    Error,
    /// A datetime: blank it (it cannot be shifted and must not leak the source date).
    Blank,
    /// A time of day (`measurement_time`) or an unknown `*_date` column: keep the text.
    Keep,
}

#[derive(Debug, Clone, Copy)]
enum ColPlan {
    Literal,
    Hole(Hole, BadDate),
}

pub(crate) struct Template {
    /// Lower-case table name.
    pub name: String,
    pub path: PathBuf,
    pub spec: &'static TableSpec,
    /// The header line (lower-case column names) with its newline.
    pub header: Vec<u8>,
    pub holes: Vec<Hole>,
    pub rows: usize,
    /// The hole holding the person id (`person_id`, or `entity_id` for location_history).
    pub person_hole: Option<usize>,
    /// Values of the table's domain concept column (case mix), NULL where empty or not a number.
    pub concepts: Option<Vec<i64>>,
    /// Smallest and largest id in an [`Hole::Id`] hole (None: no non-NULL id).
    pub id_range: Option<(i64, i64)>,
    /// Literal bytes of all rows, end to end.
    lit: Vec<u8>,
    /// `holes.len() + 1` literal end offsets per row.
    ends: Vec<usize>,
    /// `holes.len()` values per row.
    vals: Vec<i64>,
    /// Hole indices of year, month and day of birth (person table in [`Mode::Shift`]).
    birth: [Option<usize>; 3],
}

fn is_special(b: u8) -> bool {
    matches!(b, b',' | b'"' | b'\n' | b'\r')
}

/// Appends a CSV field, quoted only when it must be.
pub(crate) fn push_field(out: &mut Vec<u8>, field: &[u8]) {
    if field.iter().any(|&b| is_special(b)) {
        out.push(b'"');
        for &b in field {
            if b == b'"' {
                out.push(b'"');
            }
            out.push(b);
        }
        out.push(b'"');
    } else {
        out.extend_from_slice(field);
    }
}

fn trim(s: &[u8]) -> &[u8] {
    s.trim_ascii()
}

/// An integer as exported by OHDSI tools: `123`, `-4`, `10204.0` (a zero fraction is allowed).
/// `Ok(NULL)` for an empty field.
pub(crate) fn parse_int(s: &[u8]) -> Result<i64, ()> {
    let s = trim(s);
    if s.is_empty() {
        return Ok(NULL);
    }
    let (neg, digits) = match s[0] {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    let (int, frac) = match digits.iter().position(|&b| b == b'.') {
        Some(i) => (&digits[..i], &digits[i + 1..]),
        None => (digits, &b""[..]),
    };
    if int.is_empty() || !frac.iter().all(|&b| b == b'0') {
        return Err(());
    }
    let mut v: i64 = 0;
    for &b in int {
        if !b.is_ascii_digit() {
            return Err(());
        }
        v = v
            .checked_mul(10)
            .and_then(|v| v.checked_add((b - b'0') as i64))
            .ok_or(())?;
    }
    let v = if neg { -v } else { v };
    if v == NULL {
        return Err(());
    }
    Ok(v)
}

/// Splits a date or datetime into its day and the text after the date (`" 00:00:00"`, `"T…"`).
fn parse_date(s: &[u8]) -> Option<(Day, &[u8])> {
    let s = trim(s);
    let day = date::parse(s)?;
    let date_len = if s.len() >= 10 && s[4] == b'-' { 10 } else { 8 };
    let rest = &s[date_len..];
    if rest.iter().any(|&b| is_special(b)) {
        return None;
    }
    Some((day, rest))
}

fn plan_column(spec: &TableSpec, name: &str, mode: Mode) -> ColPlan {
    let ty = spec.column(name).map(|c| c.ty);
    if ty == Some(ColType::Id) && !UNCHANGED_ID_COLUMNS.contains(&name) {
        return ColPlan::Hole(Hole::Id, BadDate::Error);
    }
    if mode == Mode::Replicate {
        return ColPlan::Literal;
    }
    if spec.kind == TableKind::Person {
        match name {
            "year_of_birth" => return ColPlan::Hole(Hole::BirthYear, BadDate::Error),
            "month_of_birth" => return ColPlan::Hole(Hole::BirthMonth, BadDate::Error),
            "day_of_birth" => return ColPlan::Hole(Hole::BirthDay, BadDate::Error),
            _ => {}
        }
    }
    if ty == Some(ColType::Date) {
        ColPlan::Hole(Hole::Date, BadDate::Error)
    } else if name.ends_with("_datetime") {
        ColPlan::Hole(Hole::Date, BadDate::Blank)
    } else if name.ends_with("_time") || name.ends_with("_date") {
        ColPlan::Hole(Hole::Date, BadDate::Keep)
    } else {
        ColPlan::Literal
    }
}

impl Template {
    /// Reads and compiles one person or clinical table.
    pub fn load(path: &Path, name: &str, spec: &'static TableSpec, mode: Mode) -> Result<Template> {
        let source_bytes = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
        let mut rdr = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(false)
            .from_path(path)
            .map_err(|e| csv_err(path, e))?;
        let names: Vec<String> = rdr
            .byte_headers()
            .map_err(|e| csv_err(path, e))?
            .iter()
            .map(|h| {
                let h = String::from_utf8_lossy(h);
                h.trim_start_matches('\u{feff}').trim().to_ascii_lowercase()
            })
            .collect();
        let mut header = Vec::new();
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                header.push(b',');
            }
            push_field(&mut header, n.as_bytes());
        }
        header.push(b'\n');

        let mut plans: Vec<ColPlan> = Vec::with_capacity(names.len());
        let mut holes = Vec::new();
        let mut person_hole = None;
        let mut birth = [None; 3];
        let person_col = spec.event.map_or("person_id", |e| e.person);
        for (i, n) in names.iter().enumerate() {
            // A repeated column name is kept as literal text after its first occurrence.
            let plan = if names[..i].contains(n) {
                ColPlan::Literal
            } else {
                plan_column(spec, n, mode)
            };
            if let ColPlan::Hole(h, _) = plan {
                let idx = holes.len();
                if h == Hole::Id && n == person_col {
                    person_hole = Some(idx);
                }
                match h {
                    Hole::BirthYear => birth[0] = Some(idx),
                    Hole::BirthMonth => birth[1] = Some(idx),
                    Hole::BirthDay => birth[2] = Some(idx),
                    _ => {}
                }
                holes.push(h);
            }
            plans.push(plan);
        }
        let concept_col = spec
            .event
            .and_then(|e| e.concept)
            .and_then(|c| names.iter().position(|n| n == c));

        let mut t = Template {
            name: name.to_string(),
            path: path.to_path_buf(),
            spec,
            header,
            holes,
            rows: 0,
            person_hole,
            concepts: concept_col.map(|_| Vec::new()),
            id_range: None,
            lit: Vec::with_capacity(source_bytes as usize),
            ends: Vec::new(),
            vals: Vec::new(),
            birth,
        };
        let mut rec = csv::ByteRecord::new();
        let (mut lo, mut hi) = (i64::MAX, i64::MIN);
        while rdr
            .read_byte_record(&mut rec)
            .map_err(|e| csv_err(path, e))?
        {
            let line = rec.position().map_or(0, |p| p.line());
            for (i, (field, plan)) in rec.iter().zip(&plans).enumerate() {
                if i > 0 {
                    t.lit.push(b',');
                }
                let bad = |what: &str| Error::Data {
                    path: path.to_path_buf(),
                    line,
                    msg: format!(
                        "column {}: {what}: {:?}",
                        names[i],
                        String::from_utf8_lossy(field)
                    ),
                };
                match *plan {
                    ColPlan::Literal => push_field(&mut t.lit, field),
                    ColPlan::Hole(Hole::Id, _) => {
                        let v = parse_int(field).map_err(|()| bad("not an integer id"))?;
                        if v != NULL {
                            lo = lo.min(v);
                            hi = hi.max(v);
                        }
                        t.ends.push(t.lit.len());
                        t.vals.push(v);
                    }
                    ColPlan::Hole(Hole::Date, on_bad) => {
                        t.ends.push(t.lit.len());
                        if trim(field).is_empty() {
                            t.vals.push(NULL);
                        } else if let Some((day, rest)) = parse_date(field) {
                            t.vals.push(day as i64);
                            t.lit.extend_from_slice(rest);
                        } else {
                            t.vals.push(NULL);
                            match on_bad {
                                BadDate::Error => return Err(bad("not a date (YYYY-MM-DD)")),
                                BadDate::Blank => {}
                                BadDate::Keep => push_field(&mut t.lit, field),
                            }
                        }
                    }
                    ColPlan::Hole(_, _) => {
                        let v = parse_int(field).map_err(|()| bad("not an integer"))?;
                        t.ends.push(t.lit.len());
                        t.vals.push(v);
                    }
                }
            }
            t.lit.push(b'\n');
            t.ends.push(t.lit.len());
            if let (Some(c), Some(out)) = (concept_col, t.concepts.as_mut()) {
                out.push(rec.get(c).and_then(|f| parse_int(f).ok()).unwrap_or(NULL));
            }
            t.rows += 1;
        }
        if lo <= hi {
            t.id_range = Some((lo, hi));
        }
        t.lit.shrink_to_fit();
        Ok(t)
    }

    /// This table with its rows in `order` (a selection of row indices), e.g. grouped by person so
    /// that writing one person's rows reads memory sequentially.
    pub fn reorder(&self, order: &[u32]) -> Template {
        let n = self.holes.len();
        let mut lit = Vec::with_capacity(self.lit.len());
        let mut ends = Vec::with_capacity(order.len() * (n + 1));
        let mut vals = Vec::with_capacity(order.len() * n);
        for &r in order {
            let r = r as usize;
            let start = if r == 0 {
                0
            } else {
                self.ends[r * (n + 1) - 1]
            };
            let row_ends = &self.ends[r * (n + 1)..(r + 1) * (n + 1)];
            let new_start = lit.len();
            lit.extend_from_slice(&self.lit[start..row_ends[n]]);
            ends.extend(row_ends.iter().map(|&e| e - start + new_start));
            vals.extend_from_slice(&self.vals[r * n..(r + 1) * n]);
        }
        Template {
            name: self.name.clone(),
            path: self.path.clone(),
            spec: self.spec,
            header: self.header.clone(),
            holes: self.holes.clone(),
            rows: order.len(),
            person_hole: self.person_hole,
            concepts: self
                .concepts
                .as_ref()
                .map(|c| order.iter().map(|&r| c[r as usize]).collect()),
            id_range: self.id_range,
            lit,
            ends,
            vals,
            birth: self.birth,
        }
    }

    /// The value of hole `h` in row `r` (NULL if empty).
    pub fn value(&self, r: usize, h: usize) -> i64 {
        self.vals[r * self.holes.len() + h]
    }

    /// Literal text this table writes per copy (bytes without the holes).
    pub fn literal_bytes(&self) -> usize {
        self.lit.len()
    }

    /// Appends row `r` with ids offset by `id_off` and dates shifted by `shift` days.
    #[inline]
    pub fn write_row(&self, r: usize, id_off: i64, shift: i32, out: &mut Vec<u8>) {
        let n = self.holes.len();
        let ends = &self.ends[r * (n + 1)..(r + 1) * (n + 1)];
        let vals = &self.vals[r * n..(r + 1) * n];
        let mut start = if r == 0 {
            0
        } else {
            self.ends[r * (n + 1) - 1]
        };
        let birth = if shift != 0 && self.birth.iter().any(Option::is_some) {
            Some(self.shifted_birth(vals, shift))
        } else {
            None
        };
        for (j, &kind) in self.holes.iter().enumerate() {
            out.extend_from_slice(&self.lit[start..ends[j]]);
            start = ends[j];
            let v = vals[j];
            if v == NULL {
                continue;
            }
            match kind {
                Hole::Id => push_int(out, v + id_off),
                Hole::Date => push_date(out, v as i32 + shift),
                Hole::BirthYear | Hole::BirthMonth | Hole::BirthDay => {
                    let i = match kind {
                        Hole::BirthYear => 0,
                        Hole::BirthMonth => 1,
                        _ => 2,
                    };
                    push_int(out, birth.map_or(v, |b| b[i]));
                }
            }
        }
        out.extend_from_slice(&self.lit[start..ends[n]]);
    }

    /// Year, month and day of birth moved by `shift` days: exactly when all three form a valid
    /// date, else the year moves by the nearest whole number of years.
    fn shifted_birth(&self, vals: &[i64], shift: i32) -> [i64; 3] {
        let get = |i: usize| self.birth[i].map_or(NULL, |h| vals[h]);
        let (y, m, d) = (get(0), get(1), get(2));
        let ymd_ok = (1..=9999).contains(&y)
            && (1..=12).contains(&m)
            && d >= 1
            && d <= date::days_in_month(y as i32, m as u32) as i64;
        if ymd_ok {
            let (ny, nm, nd) = date::to_ymd(date::from_ymd(y as i32, m as u32, d as u32) + shift);
            [ny as i64, nm as i64, nd as i64]
        } else if y != NULL {
            [y + years_in(shift), m, d]
        } else {
            [y, m, d]
        }
    }
}

/// The whole number of years nearest to `days`.
pub(crate) fn years_in(days: i32) -> i64 {
    (days as f64 / 365.2425).round() as i64
}

#[inline]
pub(crate) fn push_int(out: &mut Vec<u8>, v: i64) {
    let mut b = itoa::Buffer::new();
    out.extend_from_slice(b.format(v).as_bytes());
}

#[inline]
pub(crate) fn push_date(out: &mut Vec<u8>, day: Day) {
    let (y, m, d) = date::to_ymd(day);
    if (0..=9999).contains(&y) {
        let y = y as u32;
        out.extend_from_slice(&[
            b'0' + (y / 1000) as u8,
            b'0' + (y / 100 % 10) as u8,
            b'0' + (y / 10 % 10) as u8,
            b'0' + (y % 10) as u8,
            b'-',
            b'0' + (m / 10) as u8,
            b'0' + (m % 10) as u8,
            b'-',
            b'0' + (d / 10) as u8,
            b'0' + (d % 10) as u8,
        ]);
    } else {
        out.extend_from_slice(format!("{y:04}-{m:02}-{d:02}").as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_as_exported() {
        assert_eq!(parse_int(b"10204.0"), Ok(10204));
        assert_eq!(parse_int(b" -7 "), Ok(-7));
        assert_eq!(parse_int(b""), Ok(NULL));
        assert_eq!(parse_int(b"1.5"), Err(()));
        assert_eq!(parse_int(b"abc"), Err(()));
        assert_eq!(parse_int(b"-"), Err(()));
        assert_eq!(parse_int(b"99999999999999999999"), Err(()));
        assert_eq!(parse_int(b"-9223372036854775808"), Err(()));
    }

    #[test]
    fn dates_format_like_the_cdm() {
        for day in [-800_000, -1, 0, 11_017, 18_000, 2_900_000] {
            let mut out = Vec::new();
            push_date(&mut out, day);
            assert_eq!(out, date::format(day).as_bytes());
        }
        assert_eq!(
            parse_date(b"2014-04-22 10:00:00"),
            Some((date::from_ymd(2014, 4, 22), &b" 10:00:00"[..]))
        );
        assert_eq!(
            parse_date(b"20140422"),
            Some((date::from_ymd(2014, 4, 22), &b""[..]))
        );
        assert_eq!(parse_date(b"22/04/2014"), None);
    }

    #[test]
    fn quoting_only_when_needed() {
        let mut out = Vec::new();
        push_field(&mut out, b"plain");
        out.push(b',');
        push_field(&mut out, b"a,\"b\"");
        assert_eq!(out, b"plain,\"a,\"\"b\"\"\"");
    }
}

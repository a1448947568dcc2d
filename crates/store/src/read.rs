//! Opening a store and viewing its sections as typed slices.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memmap2::Mmap;
use qiao_cdm::{TableSpec, NULL_INT};
use rayon::prelude::*;

use crate::column::{self, ColumnRef, I32Column, IdColumn, Offsets, Parts, TextRef};
use crate::day_column::DayColumn;
use crate::error::StoreError;
use crate::format::{self, DType, Element, SectionInfo, Toc};
use crate::meta::Meta;
use crate::person_column::PersonColumn;

/// The bytes of a store: a memory-mapped file, or an owned buffer (tests, in-memory stores).
enum Backing {
    Mmap(Mmap),
    /// u64 words so that every section is at least 8-byte aligned.
    Owned(Vec<u64>, usize),
}

impl Backing {
    fn bytes(&self) -> &[u8] {
        match self {
            Backing::Mmap(m) => m,
            Backing::Owned(words, len) => &bytemuck::cast_slice(words)[..*len],
        }
    }
}

impl Backing {
    /// Lets the kernel drop the pages of `offset..offset + len` from this process's resident
    /// memory (a file map only: touched again, they are read back from the page cache). Full
    /// verification reads the whole file; this keeps its resident memory to what it checks at once.
    fn release(&self, offset: usize, len: usize) {
        if let Backing::Mmap(m) = self {
            let len = len.min(m.len().saturating_sub(offset));
            if len > 0 {
                // SAFETY: the map is shared and read-only, of a file no one writes (see
                // `Store::open`): dropping its pages changes no byte a reader sees.
                let _ = unsafe {
                    m.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, offset, len)
                };
            }
        }
    }

    fn release_all(&self) {
        self.release(0, self.bytes().len());
    }
}

/// An open, immutable Qiao store. Cheap to clone (shared); safe to read from many threads.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

struct Inner {
    backing: Backing,
    /// By name, ordered: the sections under a prefix (a table's columns) are one range.
    sections: BTreeMap<String, SectionInfo>,
    meta: Meta,
    source: String,
    /// One offset per person plus one, all 0: the per-person offsets of a table without rows
    /// (not stored). Zeroed pages from the allocator, touched only if read.
    zero_offsets: Vec<u32>,
}

/// What is read of a person before any of their events: the person id and, for a person with
/// exactly one observation period (most), that period, side by side (one cache line holds four
/// persons' where the columns would take four lines per person).
#[derive(Debug, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
#[repr(C)]
pub struct PersonSummary {
    pub person_id: i64,
    /// The observation period's start and end; both [`PersonSummary::NOT_ONE`] when the person
    /// has no period or several (read them from the observation period rows).
    pub op_start: i32,
    pub op_end: i32,
}

impl PersonSummary {
    pub const NOT_ONE: i32 = i32::MIN;

    /// The single observation period, if the person has exactly one.
    #[inline]
    pub fn single_period(&self) -> Option<(i32, i32)> {
        (self.op_start != Self::NOT_ONE || self.op_end != Self::NOT_ONE)
            .then_some((self.op_start, self.op_end))
    }
}

impl Store {
    /// Opens a store file in time independent of its size: checks magic, version, footer, the table
    /// of contents (its checksum), every section's bounds, alignment and type, and the index
    /// structure (lengths and end points), then serves the data straight from the memory map. No
    /// data page is read: a query touches only what it reads. The sections' checksums and every
    /// element-wise invariant are checked by [`Store::verify`] (run by ingest after writing).
    pub fn open(path: impl AsRef<Path>) -> Result<Store, StoreError> {
        let path = path.as_ref();
        let io = |source| StoreError::Io {
            path: PathBuf::from(path),
            source,
        };
        let file = File::open(path).map_err(io)?;
        if file.metadata().map_err(io)?.is_dir() {
            return Err(StoreError::Corrupt {
                store: path.display().to_string(),
                what: "is a directory, not a store file".into(),
            });
        }
        // SAFETY: the store file is immutable once written (writers create a new file and rename it
        // into place), so the mapped bytes do not change under us. A file truncated by someone else
        // while mapped could raise SIGBUS; that is outside what a reader can defend against.
        let mmap = unsafe { Mmap::map(&file) }.map_err(io)?;
        Store::from_backing(Backing::Mmap(mmap), path.display().to_string())
    }

    /// A store from bytes in memory (as [`crate::write_to_vec`] makes them).
    pub fn from_bytes(bytes: &[u8]) -> Result<Store, StoreError> {
        let mut words = vec![0u64; bytes.len().div_ceil(8)];
        bytemuck::cast_slice_mut::<u64, u8>(&mut words)[..bytes.len()].copy_from_slice(bytes);
        Store::from_backing(Backing::Owned(words, bytes.len()), "<memory>".into())
    }

    fn from_backing(backing: Backing, source: String) -> Result<Store, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            store: source.clone(),
            what,
        };
        let b = backing.bytes();
        if b.len() < 8 || &b[..8] != format::MAGIC {
            return Err(corrupt("not a Qiao store (bad magic)".into()));
        }
        if b.len() < format::HEADER_LEN + format::FOOTER_LEN {
            return Err(corrupt(format!("truncated: {} bytes", b.len())));
        }
        let version = u32::from_le_bytes(b[8..12].try_into().expect("4 bytes"));
        if version != format::FORMAT_VERSION {
            return Err(StoreError::Version {
                store: source.clone(),
                found: version,
                supported: format::FORMAT_VERSION,
            });
        }
        let footer = &b[b.len() - format::FOOTER_LEN..];
        if &footer[24..32] != format::FOOTER_MAGIC {
            return Err(corrupt("truncated or damaged: no footer".into()));
        }
        if footer[20..24] != b[8..12] {
            return Err(corrupt(
                "footer and header disagree on the format version".into(),
            ));
        }
        let u64_at = |o: usize| u64::from_le_bytes(footer[o..o + 8].try_into().expect("8 bytes"));
        let (toc_off, toc_len) = (u64_at(0), u64_at(8));
        let toc_crc = u32::from_le_bytes(footer[16..20].try_into().expect("4 bytes"));
        let toc_end = toc_off
            .checked_add(toc_len)
            .filter(|&e| e <= (b.len() - format::FOOTER_LEN) as u64);
        let Some(toc_end) = toc_end else {
            return Err(corrupt("table of contents out of bounds".into()));
        };
        let toc_bytes = &b[toc_off as usize..toc_end as usize];
        if crc32fast::hash(toc_bytes) != toc_crc {
            return Err(corrupt("table of contents checksum mismatch".into()));
        }
        let toc: Toc = serde_json::from_slice(toc_bytes)
            .map_err(|e| corrupt(format!("table of contents: {e}")))?;
        let mut sections = BTreeMap::new();
        for s in toc.sections {
            let end = s.offset.checked_add(s.len).filter(|&e| e <= toc_off);
            if end.is_none()
                || !(s.offset as usize).is_multiple_of(8)
                || !(s.len as usize).is_multiple_of(s.dtype.size())
            {
                return Err(corrupt(format!(
                    "section {} out of bounds or misaligned",
                    s.name
                )));
            }
            sections.insert(s.name.clone(), s);
        }
        let persons = sections.get("person/id").map_or(0, |s| s.len as usize / 8);
        let store = Store {
            inner: Arc::new(Inner {
                backing,
                sections,
                meta: toc.meta,
                source,
                zero_offsets: vec![0; persons + 1],
            }),
        };
        store.check_structure(Depth::Open)?;
        Ok(store)
    }

    /// Full verification: every section's checksum and every invariant the views rely on
    /// (offsets monotone, person indexes and posting rows in range, each row's person consistent
    /// with the per-person offsets, keys ascending). Reads the whole file once (in parallel).
    pub fn verify(&self) -> Result<Verified, StoreError> {
        let corrupt = |what: String| StoreError::Corrupt {
            store: self.inner.source.clone(),
            what,
        };
        let sections: Vec<&SectionInfo> = self.inner.sections.values().collect();
        let bad = sections.par_iter().find_first(|s| {
            // In windows, each released once checked: resident memory stays small whatever the size.
            const WINDOW: usize = 32 << 20;
            let mut crc = crc32fast::Hasher::new();
            for (i, w) in self.bytes_of(s).chunks(WINDOW).enumerate() {
                crc.update(w);
                self.inner
                    .backing
                    .release(s.offset as usize + i * WINDOW, w.len());
            }
            crc.finalize() != s.crc32
        });
        if let Some(s) = bad {
            return Err(corrupt(format!("section {} checksum mismatch", s.name)));
        }
        self.check_structure(Depth::Full)?;
        Ok(Verified {
            sections: sections.len(),
            bytes: sections.iter().map(|s| s.len).sum(),
        })
    }

    /// Invariants the views rely on. [`Depth::Open`]: lengths agree and offsets start at 0 and end
    /// at their array's length (constant time per section). [`Depth::Full`] adds the element-wise
    /// ones (offsets monotone, person indexes and posting rows in range, rows grouped by person,
    /// keys ascending): with them, no lookup can go out of bounds.
    fn check_structure(&self, depth: Depth) -> Result<(), StoreError> {
        let full = depth == Depth::Full;
        let n = self.persons().len();
        let bad = |what: String| StoreError::Corrupt {
            store: self.inner.source.clone(),
            what,
        };
        let summaries = self.section::<PersonSummary>("person/summary")?;
        if summaries.len() != n
            || (full
                && summaries
                    != &crate::build::person_summaries(
                        self.persons().ids(),
                        self.domain("observation_period").as_ref(),
                    )[..])
        {
            return Err(bad("person/summary: does not match the persons".into()));
        }
        for name in self.domain_names() {
            let d = self.domain_by_name(&name).map_err(|e| bad(e.to_string()))?;
            let rows = d.person.len();
            if [
                d.start.len(),
                d.end.len(),
                d.concept.len(),
                d.event_id.len(),
            ]
            .iter()
            .any(|&l| l != rows)
                || !d.person.well_formed()
                || !d.start.well_formed()
                || !d.end.well_formed()
                || d.person_offsets.len() != n + 1
                || !offsets_ok(d.person_offsets, rows, full)
                || !offsets_ok(d.post_offsets, d.post_rows.len(), full)
                || d.post_offsets.len() != d.post_keys.len() + 1
                || (full
                    && (!ascending(d.post_keys)
                        || d.post_rows.par_iter().any(|&r| r as usize >= rows)
                        || !persons_agree(&d.person, d.person_offsets)))
            {
                return Err(bad(format!("domain {name}: inconsistent index")));
            }
            // Every stored column must have come out as a view of the right length.
            let stored = self.column_names_under(&format!("dom/{name}/col/"));
            if stored.iter().any(|c| {
                d.columns
                    .get(c)
                    .is_none_or(|v| v.len() != rows || (full && !v.verify()))
            }) {
                return Err(bad(format!(
                    "domain {name}: column parts or lengths disagree"
                )));
            }
            if full {
                self.inner.backing.release_all();
            }
        }
        // The person, concept and reference tables' columns.
        let mut tables = vec![
            ("person/col/".to_string(), self.persons().len()),
            ("vocab/concept/col/".to_string(), self.vocabulary().len()),
        ];
        for name in self.reference_names() {
            if let Some(r) = self.reference(&name) {
                tables.push((format!("ref/{name}/col/"), r.len()));
            }
        }
        for (prefix, rows) in tables {
            let columns = self.columns_under(&prefix, rows);
            let stored = self.column_names_under(&prefix);
            if stored.iter().any(|c| {
                columns
                    .get(c)
                    .is_none_or(|v| v.len() != rows || (full && !v.verify()))
            }) {
                return Err(bad(format!("{prefix}: column parts or lengths disagree")));
            }
        }
        for prefix in ["vocab/ancestor", "vocab/mapped_from"] {
            if let Ok(m) = self.multimap(prefix) {
                if m.offsets.len() != m.keys.len() + 1
                    || !offsets_ok(m.offsets, m.values.len(), full)
                    || (full && !ascending(m.keys))
                {
                    return Err(bad(format!("{prefix}: inconsistent index")));
                }
            }
        }
        Ok(())
    }

    pub fn meta(&self) -> &Meta {
        &self.inner.meta
    }

    /// Where the store was opened from (a path, or `<memory>`).
    pub fn source(&self) -> &str {
        &self.inner.source
    }

    fn section<T: Element>(&self, name: &str) -> Result<&[T], StoreError> {
        let s = self
            .inner
            .sections
            .get(name)
            .ok_or_else(|| StoreError::Missing {
                name: name.to_string(),
            })?;
        if s.dtype != T::DTYPE {
            return Err(StoreError::Corrupt {
                store: self.inner.source.clone(),
                what: format!("section {name} has type {:?}", s.dtype),
            });
        }
        let bytes = self.bytes_of(s);
        bytemuck::try_cast_slice(bytes).map_err(|e| StoreError::Corrupt {
            store: self.inner.source.clone(),
            what: format!("section {name}: {e}"),
        })
    }

    /// A section's bytes (bounds checked when the store was opened).
    fn bytes_of(&self, s: &SectionInfo) -> &[u8] {
        &self.inner.backing.bytes()[s.offset as usize..(s.offset + s.len) as usize]
    }

    fn raw(&self, name: &str) -> Option<(DType, &[u8])> {
        let s = self.inner.sections.get(name)?;
        Some((s.dtype, self.bytes_of(s)))
    }

    /// The column stored as `name` (in any encoding, see [`column_of`]), of `rows` rows.
    fn column_at(&self, name: &str, rows: usize) -> Option<ColumnRef<'_>> {
        let mut raw: RawParts<'_> = [None; 12];
        for (part, suffix) in raw.iter_mut().zip(PARTS) {
            *part = self.raw(&format!("{name}{suffix}"));
        }
        column_of(raw, rows)
    }

    /// Every column stored under `prefix`, each of `rows` rows, from one pass over the prefix's
    /// range of the ordered directory (a column's sections are `name` and `name.<part>`). A column
    /// whose parts disagree is reported by [`Store::check_structure`].
    fn columns_under(&self, prefix: &str, rows: usize) -> HashMap<String, ColumnRef<'_>> {
        let mut parts: HashMap<&str, RawParts<'_>> = HashMap::new();
        for (full, s) in self.sections_under(prefix) {
            let rest = &full[prefix.len()..];
            let (col, part) = rest.split_at(rest.find('.').unwrap_or(rest.len()));
            if let Some(i) = PARTS.iter().position(|&p| p == part) {
                parts.entry(col).or_insert([None; 12])[i] = Some((s.dtype, self.bytes_of(s)));
            }
        }
        parts
            .into_iter()
            .filter_map(|(col, raw)| Some((col.to_string(), column_of(raw, rows)?)))
            .collect()
    }

    /// The sections under `prefix`, ascending by name.
    fn sections_under<'n>(
        &'n self,
        prefix: &'n str,
    ) -> impl Iterator<Item = (&'n String, &'n SectionInfo)> + 'n {
        self.inner
            .sections
            .range::<str, _>((
                std::ops::Bound::Included(prefix),
                std::ops::Bound::Unbounded,
            ))
            .take_while(move |(name, _)| name.starts_with(prefix))
    }

    /// Column names stored under `prefix` (whatever their encoding).
    fn column_names_under(&self, prefix: &str) -> Vec<String> {
        let mut v: Vec<String> = self
            .sections_under(prefix)
            .filter_map(|(n, _)| {
                n.strip_prefix(prefix)
                    .map(|rest| rest.split('.').next().unwrap_or(rest).to_string())
            })
            .collect();
        v.sort();
        v.dedup();
        v
    }

    /// Every person id known to the store (person rows and orphans).
    pub fn persons(&self) -> Persons<'_> {
        Persons {
            ids: self.section("person/id").unwrap_or(&[]),
            has_row: self.section("person/has_row").unwrap_or(&[]),
            columns: self.columns_under(
                "person/col/",
                self.section::<i64>("person/id").map_or(0, |v| v.len()),
            ),
        }
    }

    /// The `person_source_value` (the hospital's local record number) of the person with id
    /// `person_id`: see [`Persons::source_value`]. For the site's pre-screening list only.
    pub fn person_source_value(&self, person_id: i64) -> Option<&str> {
        let persons = self.persons();
        persons.source_value(persons.index_of(person_id)?)
    }

    /// Per person index, the person id and single observation period ([`PersonSummary`]),
    /// written by ingest: a slice of the file, read only where a query reads it.
    pub fn person_summaries(&self) -> &[PersonSummary] {
        self.section("person/summary").unwrap_or(&[])
    }

    /// Names of the event tables stored (in no particular order).
    pub fn domain_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .inner
            .sections
            .keys()
            .filter_map(|k| {
                k.strip_prefix("dom/")?
                    .strip_suffix("/concept")
                    .map(str::to_string)
            })
            .collect();
        v.sort();
        v
    }

    /// An event table (e.g. `condition_occurrence`, `observation_period`), or None if the CDM had none.
    pub fn domain(&self, table: &str) -> Option<Domain<'_>> {
        self.domain_by_name(table).ok()
    }

    fn domain_by_name(&self, table: &str) -> Result<Domain<'_>, StoreError> {
        let spec = qiao_cdm::table(table).ok_or_else(|| StoreError::Missing {
            name: table.to_string(),
        })?;
        let p = format!("dom/{}", spec.name);
        let person = self.person_column(&p)?;
        let rows = person.len();
        let event_id = self
            .column_at(&format!("{p}/event_id"), rows)
            .and_then(ColumnRef::as_id)
            .ok_or_else(|| StoreError::Corrupt {
                store: self.inner.source.clone(),
                what: format!("{p}/event_id: missing, or its parts disagree"),
            })?;
        let person_offsets = match self.section::<u32>(&format!("{p}/person_offsets"))? {
            [] if rows == 0 => &self.inner.zero_offsets[..],
            offsets => offsets,
        };
        let (start, end) = (
            self.day_column(&format!("{p}/start"))?,
            self.day_column(&format!("{p}/end"))?,
        );
        Ok(Domain {
            spec,
            person,
            start,
            end,
            concept: self.section(&format!("{p}/concept"))?,
            event_id,
            person_offsets,
            post_keys: self.section(&format!("{p}/post_keys"))?,
            post_offsets: self.section(&format!("{p}/post_offsets"))?,
            post_rows: self.section(&format!("{p}/post_rows"))?,
            columns: {
                let mut cols = self.columns_under(&format!("{p}/col/"), rows);
                // Core columns answer for the CDM columns they were built from.
                if let Some(ev) = spec.event.as_ref() {
                    if let Some(pk) = ev.pk {
                        cols.insert(pk.to_string(), ColumnRef::Id(event_id));
                    }
                    cols.insert(ev.start.to_string(), ColumnRef::I32(start.into()));
                    if let Some(c) = ev.concept {
                        cols.insert(
                            c.to_string(),
                            ColumnRef::I32(I32Column::from_slice(
                                self.section(&format!("{p}/concept"))?,
                            )),
                        );
                    }
                    if let Some(e) = ev.end {
                        if !cols.contains_key(e)
                            && self
                                .inner
                                .meta
                                .tables
                                .get(spec.name)
                                .is_some_and(|t| t.columns_present.iter().any(|c| c == e))
                        {
                            cols.insert(e.to_string(), ColumnRef::I32(end.into()));
                        }
                    }
                }
                cols
            },
        })
    }

    /// `{prefix}/person` in whichever encoding it was stored (see [`crate::person_column`]).
    fn person_column(&self, prefix: &str) -> Result<PersonColumn<'_>, StoreError> {
        let name = format!("{prefix}/person");
        if let Ok(plain) = self.section::<u32>(&name) {
            return Ok(PersonColumn::from_slice(plain));
        }
        let blocks = self.section::<u32>(&format!("{name}.blocks"))?;
        match self.section::<u8>(&format!("{name}.u8")) {
            Ok(codes) => Ok(PersonColumn::u8(blocks, codes)),
            Err(_) => Ok(PersonColumn::u16(
                blocks,
                self.section(&format!("{name}.u16"))?,
            )),
        }
    }

    /// `name` (an event table's start or end) in whichever encoding it was stored (see
    /// [`crate::day_column`]).
    fn day_column(&self, name: &str) -> Result<DayColumn<'_>, StoreError> {
        if let Ok(plain) = self.section::<i32>(name) {
            return Ok(DayColumn::from_slice(plain));
        }
        Ok(DayColumn::u16(
            self.section(&format!("{name}.blocks"))?,
            self.section(&format!("{name}.u16"))?,
        ))
    }

    /// Names of the reference tables stored.
    fn reference_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .sections_under("ref/")
            .filter_map(|(k, _)| Some(k.strip_prefix("ref/")?.split('/').next()?.to_string()))
            .collect();
        v.dedup();
        v
    }

    /// A reference table (`location`, `care_site`, `provider`), rows sorted by primary key.
    pub fn reference(&self, table: &str) -> Option<Reference<'_>> {
        let spec = qiao_cdm::table(table)?;
        let prefix = format!("ref/{}/col/", spec.name);
        let rows = self
            .raw(&format!("{prefix}{}", spec.columns[0].name))
            .map_or(0, |(dt, b)| b.len() / dt.size());
        let columns = self.columns_under(&prefix, rows);
        if columns.is_empty() {
            return None;
        }
        Some(Reference { spec, columns })
    }

    fn multimap(&self, prefix: &str) -> Result<MultiMap<'_>, StoreError> {
        Ok(MultiMap {
            keys: self.section(&format!("{prefix}/keys"))?,
            offsets: self.section(&format!("{prefix}/offsets"))?,
            values: self.section(&format!("{prefix}/values"))?,
        })
    }

    /// The vocabulary: concepts, ancestor closure, and "Maps to".
    pub fn vocabulary(&self) -> Vocabulary<'_> {
        let empty = MultiMap {
            keys: &[],
            offsets: &[0],
            values: &[],
        };
        Vocabulary {
            columns: self.columns_under(
                "vocab/concept/col/",
                self.section::<i32>("vocab/concept/col/concept_id")
                    .map_or(0, |v| v.len()),
            ),
            ancestor: self.multimap("vocab/ancestor").unwrap_or(empty),
            ancestor_levels: self
                .section::<i32>("vocab/ancestor/min_levels")
                .ok()
                .filter(|l| {
                    l.len()
                        == self
                            .multimap("vocab/ancestor")
                            .map_or(0, |m| m.values.len())
                }),
            mapped_from: self.multimap("vocab/mapped_from").unwrap_or(empty),
        }
    }
}

/// How much [`Store::check_structure`] checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    /// What opening checks: constant time per section.
    Open,
    /// Every element ([`Store::verify`]).
    Full,
}

/// What [`Store::verify`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    pub sections: usize,
    pub bytes: u64,
}

/// Offsets into an array of `len`: start at 0, end at `len`, and (`full`) never decrease.
fn offsets_ok<T: Copy + Into<u64> + PartialOrd + Sync>(
    offsets: &[T],
    len: usize,
    full: bool,
) -> bool {
    offsets.first().is_some_and(|&o| o.into() == 0)
        && offsets.last().is_some_and(|&o| o.into() == len as u64)
        && (!full || offsets.par_windows(2).all(|w| w[0] <= w[1]))
}

fn ascending<T: Ord + Sync>(keys: &[T]) -> bool {
    keys.par_windows(2).all(|w| w[0] < w[1])
}

/// Every row in `offsets[p]..offsets[p + 1]` (monotone offsets) is a row of person `p`.
fn persons_agree(person: &PersonColumn<'_>, offsets: &[u32]) -> bool {
    offsets.par_windows(2).enumerate().all(|(p, w)| {
        (w[0] as usize..w[1] as usize).all(|r| person.get(r).is_some_and(|q| q as usize == p))
    })
}

/// Every person id the store knows, by dense index `0..len()` in ascending person id order.
pub struct Persons<'a> {
    ids: &'a [i64],
    has_row: &'a [u8],
    columns: HashMap<String, ColumnRef<'a>>,
}

impl<'a> Persons<'a> {
    pub fn len(&self) -> usize {
        self.ids.len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }
    pub fn ids(&self) -> &'a [i64] {
        self.ids
    }
    pub fn person_id(&self, idx: u32) -> i64 {
        self.ids[idx as usize]
    }
    pub fn index_of(&self, person_id: i64) -> Option<u32> {
        self.ids.binary_search(&person_id).ok().map(|i| i as u32)
    }
    /// [`Persons::index_of`] of each of `person_ids`. Ids in ascending order (a cohort's rows, an
    /// event table's) are found by searching forward from the previous one; any order works.
    pub fn index_of_each(&self, person_ids: impl IntoIterator<Item = i64>) -> Vec<Option<u32>> {
        index_of_each(self.ids, person_ids)
    }
    /// True if the person has a row in `person` (false for orphans known only from event tables).
    pub fn has_row(&self, idx: u32) -> bool {
        self.has_row.get(idx as usize).is_some_and(|&h| h != 0)
    }
    /// A person column (`year_of_birth`, `gender_concept_id`, …) by person index; NULL for orphans.
    pub fn column(&self, name: &str) -> Option<ColumnRef<'a>> {
        self.columns.get(name).copied()
    }
    /// `person.<name>` as i32 values by person index (concepts, year_of_birth, …).
    pub fn i32_column(&self, name: &str) -> &'a [i32] {
        self.column(name)
            .and_then(ColumnRef::as_i32)
            .and_then(|c| c.as_slice())
            .unwrap_or(&[])
    }
    /// The person's `person_source_value`: the hospital's own record number, for the site's
    /// pre-screening list only (never in anything that leaves the site). None for an orphan, a
    /// NULL, or a CDM without the column.
    pub fn source_value(&self, idx: u32) -> Option<&'a str> {
        self.column("person_source_value")?
            .as_text()?
            .get(idx as usize)
    }
    pub fn year_of_birth(&self, idx: u32) -> Option<i32> {
        self.i32_column("year_of_birth")
            .get(idx as usize)
            .copied()
            .filter(|&y| y != NULL_INT)
    }
}

/// One event table, rows sorted by (person index, start date, event id).
pub struct Domain<'a> {
    spec: &'static TableSpec,
    person: PersonColumn<'a>,
    start: DayColumn<'a>,
    end: DayColumn<'a>,
    concept: &'a [i32],
    event_id: IdColumn<'a>,
    person_offsets: &'a [u32],
    post_keys: &'a [i32],
    post_offsets: &'a [u64],
    post_rows: &'a [u32],
    columns: HashMap<String, ColumnRef<'a>>,
}

impl<'a> Domain<'a> {
    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }
    pub fn len(&self) -> usize {
        self.person.len()
    }
    pub fn is_empty(&self) -> bool {
        self.person.is_empty()
    }
    /// Person index of each row (ascending).
    pub fn person(&self) -> PersonColumn<'a> {
        self.person
    }
    /// Start date of each row (ascending within a person; see [`DayColumn`]).
    pub fn start(&self) -> DayColumn<'a> {
        self.start
    }
    /// Circe's end date of each row (the table's end-date rule applied: see [`qiao_cdm::EndRule`]).
    pub fn end(&self) -> DayColumn<'a> {
        self.end
    }
    /// The domain concept of each row (NULL_CONCEPT where the table has none, e.g. observation_period).
    pub fn concept(&self) -> &'a [i32] {
        self.concept
    }
    /// Circe's event id: the table's primary key (death: the person id), stored as a base and
    /// 32-bit offsets where the ids span less than 2³² (`get` is one add).
    pub fn event_id(&self) -> IdColumn<'a> {
        self.event_id
    }
    /// Where each person's rows begin (`person_offsets[p]..person_offsets[p + 1]`: the rows of
    /// person index `p`; one more entry than persons).
    pub fn person_offsets(&self) -> &'a [u32] {
        self.person_offsets
    }
    /// The rows of one person.
    pub fn person_rows(&self, person_idx: u32) -> Range<usize> {
        let i = person_idx as usize;
        match (self.person_offsets.get(i), self.person_offsets.get(i + 1)) {
            (Some(&a), Some(&b)) => a as usize..b as usize,
            _ => 0..0,
        }
    }
    /// The rows of the persons `persons` (a range of person indexes), contiguous.
    pub fn persons_rows(&self, persons: Range<u32>) -> Range<usize> {
        let at = |i: u32| {
            let last = self.person_offsets.last().map_or(0, |&o| o as usize);
            self.person_offsets
                .get(i as usize)
                .map_or(last, |&o| o as usize)
        };
        let (a, b) = (at(persons.start), at(persons.end));
        a..b.max(a)
    }
    /// Rows whose domain concept is `concept_id`, ascending (hence sorted by person, start).
    pub fn concept_rows(&self, concept_id: i32) -> &'a [u32] {
        match self.post_keys.binary_search(&concept_id) {
            Ok(i) => {
                &self.post_rows[self.post_offsets[i] as usize..self.post_offsets[i + 1] as usize]
            }
            Err(_) => &[],
        }
    }
    /// Distinct concepts with their row counts, ascending by concept id.
    pub fn concept_counts(&self) -> impl Iterator<Item = (i32, u64)> + 'a {
        let (keys, offsets) = (self.post_keys, self.post_offsets);
        keys.iter()
            .enumerate()
            .map(move |(i, &k)| (k, offsets[i + 1] - offsets[i]))
    }
    /// An attribute column by CDM name (e.g. `condition_type_concept_id`, `value_as_number`), in row
    /// order. `None` means every value is NULL (the column was absent from the source, or empty in
    /// every row). The primary key is the event id; the person column is [`Domain::person`].
    pub fn column(&self, name: &str) -> Option<ColumnRef<'a>> {
        self.columns.get(name).copied()
    }
}

/// A reference table (location, care_site, provider): rows sorted by primary key.
pub struct Reference<'a> {
    spec: &'static TableSpec,
    columns: HashMap<String, ColumnRef<'a>>,
}

impl<'a> Reference<'a> {
    pub fn spec(&self) -> &'static TableSpec {
        self.spec
    }
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.columns.values().next().map_or(0, ColumnRef::len)
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    pub fn column(&self, name: &str) -> Option<ColumnRef<'a>> {
        self.columns.get(name).copied()
    }
    /// The row of a primary key value.
    pub fn row_of(&self, id: i64) -> Option<usize> {
        let ids = self
            .column(self.spec.columns[0].name)?
            .as_id()?
            .as_slice()?;
        ids.binary_search(&id).ok()
    }
}

#[derive(Clone, Copy)]
struct MultiMap<'a> {
    keys: &'a [i32],
    offsets: &'a [u64],
    values: &'a [i32],
}

impl<'a> MultiMap<'a> {
    fn get(&self, key: i32) -> &'a [i32] {
        match self.keys.binary_search(&key) {
            Ok(i) => &self.values[self.offsets[i] as usize..self.offsets[i + 1] as usize],
            Err(_) => &[],
        }
    }
}

/// One concept's row in the vocabulary.
#[derive(Debug, Clone, PartialEq)]
pub struct ConceptInfo<'a> {
    pub concept_id: i32,
    pub concept_name: Option<&'a str>,
    pub domain_id: Option<&'a str>,
    pub vocabulary_id: Option<&'a str>,
    pub concept_class_id: Option<&'a str>,
    pub standard_concept: Option<&'a str>,
    pub concept_code: Option<&'a str>,
    pub invalid_reason: Option<&'a str>,
}

/// Concepts, the ancestor closure and "Maps to", ready for concept-set expansion.
pub struct Vocabulary<'a> {
    columns: HashMap<String, ColumnRef<'a>>,
    ancestor: MultiMap<'a>,
    /// `min_levels_of_separation`, aligned with `ancestor`'s values (None: not in the CDM).
    ancestor_levels: Option<&'a [i32]>,
    mapped_from: MultiMap<'a>,
}

impl<'a> Vocabulary<'a> {
    fn ids(&self) -> &'a [i32] {
        self.columns
            .get("concept_id")
            .and_then(|c| c.as_i32())
            .and_then(|c| c.as_slice())
            .unwrap_or(&[])
    }
    fn row(&self, id: i32) -> Option<usize> {
        self.ids().binary_search(&id).ok()
    }
    fn text(&self, col: &str, row: usize) -> Option<&'a str> {
        self.columns.get(col)?.as_text()?.get(row)
    }
    /// Number of concepts.
    pub fn len(&self) -> usize {
        self.ids().len()
    }
    pub fn is_empty(&self) -> bool {
        self.ids().is_empty()
    }
    pub fn contains(&self, id: i32) -> bool {
        self.row(id).is_some()
    }
    /// The concept exists and its `invalid_reason` is NULL.
    pub fn is_valid(&self, id: i32) -> bool {
        self.row(id)
            .is_some_and(|r| self.text("invalid_reason", r).is_none())
    }
    pub fn concept(&self, id: i32) -> Option<ConceptInfo<'a>> {
        let r = self.row(id)?;
        Some(ConceptInfo {
            concept_id: id,
            concept_name: self.text("concept_name", r),
            domain_id: self.text("domain_id", r),
            vocabulary_id: self.text("vocabulary_id", r),
            concept_class_id: self.text("concept_class_id", r),
            standard_concept: self.text("standard_concept", r),
            concept_code: self.text("concept_code", r),
            invalid_reason: self.text("invalid_reason", r),
        })
    }
    /// `concept_ancestor` descendants of `ancestor` (ascending; includes `ancestor` only if its self-row exists).
    pub fn descendants(&self, ancestor: i32) -> &'a [i32] {
        self.ancestor.get(ancestor)
    }
    /// `min_levels_of_separation` of each of [`Vocabulary::descendants`]`(ancestor)`, in the same
    /// order (None when the CDM's concept_ancestor had no such column).
    pub fn descendant_min_levels(&self, ancestor: i32) -> Option<&'a [i32]> {
        let levels = self.ancestor_levels?;
        match self.ancestor.keys.binary_search(&ancestor) {
            Ok(i) => {
                levels.get(self.ancestor.offsets[i] as usize..self.ancestor.offsets[i + 1] as usize)
            }
            Err(_) => Some(&[]),
        }
    }
    /// Every concept id of the `concept` table (ascending).
    pub fn concept_ids(&self) -> &'a [i32] {
        self.ids()
    }
    /// Source concepts with a valid "Maps to" relationship to `target` (ascending).
    pub fn mapped_from(&self, target: i32) -> &'a [i32] {
        self.mapped_from.get(target)
    }
}

/// A column's sections (type and bytes), by [`PARTS`].
type RawParts<'a> = [Option<(DType, &'a [u8])>; 12];

/// The suffixes of a column's sections, in the order [`column_of`] takes them.
const PARTS: [&str; 12] = [
    "",
    ".const",
    ".base",
    ".u16",
    ".u32",
    ".text_const",
    ".offsets",
    ".data",
    ".nulls",
    ".dict",
    ".u8",
    ".blocks",
];

/// The typed view of a column of `rows` rows from its sections (by [`PARTS`]), if they agree.
fn column_of(raw: RawParts<'_>, rows: usize) -> Option<ColumnRef<'_>> {
    fn typed(part: Option<(DType, &[u8])>, want: DType) -> Option<&[u8]> {
        part.filter(|(dtype, _)| *dtype == want).map(|(_, b)| b)
    }
    let text = match raw[6] {
        Some((dtype, bytes)) => {
            let offsets = match dtype {
                DType::U32 => Offsets::Narrow(bytemuck::try_cast_slice(bytes).ok()?),
                DType::U64 => Offsets::Wide(bytemuck::try_cast_slice(bytes).ok()?),
                _ => return None,
            };
            Some(TextRef::stored(
                offsets,
                typed(raw[7], DType::U8)?,
                typed(raw[8], DType::U8)?,
            )?)
        }
        None => None,
    };
    column::view(
        Parts {
            plain: raw[0],
            constant: raw[1],
            base: raw[2],
            u16: typed(raw[3], DType::U16).and_then(|b| bytemuck::try_cast_slice(b).ok()),
            u32: typed(raw[4], DType::U32).and_then(|b| bytemuck::try_cast_slice(b).ok()),
            text_const: raw[5].map(|(_, b)| b),
            dict: typed(raw[9], DType::I32).and_then(|b| bytemuck::try_cast_slice(b).ok()),
            dict64: typed(raw[9], DType::I64).and_then(|b| bytemuck::try_cast_slice(b).ok()),
            u8: typed(raw[10], DType::U8),
            blocks: typed(raw[11], DType::I64).and_then(|b| bytemuck::try_cast_slice(b).ok()),
            text,
        },
        rows,
    )
}

/// [`Persons::index_of_each`] over the sorted `ids`: from the previous hit, gallop forward, then
/// search the last step; back to the start when an id is smaller than the one before.
fn index_of_each(ids: &[i64], person_ids: impl IntoIterator<Item = i64>) -> Vec<Option<u32>> {
    let mut from = 0usize;
    let mut last: Option<(i64, Option<u32>)> = None;
    person_ids
        .into_iter()
        .map(|subject| {
            match last {
                Some((s, i)) if s == subject => return i,
                Some((s, _)) if s > subject => from = 0,
                _ => {}
            }
            let mut step = 1usize;
            let mut hi = from;
            while hi < ids.len() && ids[hi] < subject {
                from = hi + 1;
                hi += step;
                step *= 2;
            }
            let hi = hi.min(ids.len());
            let at = from + ids[from..hi].partition_point(|&id| id < subject);
            from = at;
            let i = (ids.get(at) == Some(&subject)).then_some(at as u32);
            last = Some((subject, i));
            i
        })
        .collect()
}

#[cfg(test)]
mod index_of_each_tests {
    use super::index_of_each;

    #[test]
    fn equals_a_binary_search_in_any_order() {
        let ids: Vec<i64> = (0..1000).map(|i| i * 3 + 1).collect();
        let subjects = [1, 1, 4, 5, 700, 2998, 2998, 3000, 0, 7, 1501, 40, 40, -5];
        let want: Vec<Option<u32>> = subjects
            .iter()
            .map(|s| ids.binary_search(s).ok().map(|i| i as u32))
            .collect();
        assert_eq!(index_of_each(&ids, subjects), want);
        assert_eq!(want[3], None);
        assert_eq!(want[5], Some(999));
        assert_eq!(index_of_each(&[], subjects), vec![None; subjects.len()]);
    }
}

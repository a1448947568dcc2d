//! Attribute columns: how they are encoded on disk and the typed views that read them.
//!
//! An attribute column is stored in the smallest of a few fixed-width encodings that keep random
//! access a shift or an add away (no decompression on the query path):
//!
//! | encoding | sections | when |
//! |---|---|---|
//! | plain | `NAME` (i32 / i64 / f64) | otherwise |
//! | constant | `NAME.const` (one value) | every row holds the same non-NULL value |
//! | 16-bit offsets | `NAME.base` (i32), `NAME.u16` | i32 values within 65,535 of their minimum |
//! | 16-bit blocks | `NAME.blocks` (i64: the smallest value of each 64 rows), `NAME.u16` | i64 values within 65,534 of their block's smallest (event ids, visit ids: rows sorted by person) |
//! | 32-bit offsets | `NAME.base` (i64), `NAME.u32` | i64 values within 2³²−1 of their minimum |
//! | dictionary | `NAME.dict` (i32 or i64, ascending), `NAME.u8` (codes) | at most 255 distinct values (type concepts, source concepts, counts, ids of few visits) |
//!
//! In the offset and dictionary encodings the all-ones code is NULL. Text columns are offsets + bytes + NULL flags,
//! or one constant string.

use std::io::{self, Write};

use qiao_cdm::{Column, NULL_ID, NULL_INT};

use crate::day_column::DayColumn;
use crate::format::{DType, SectionWriter};

const NULL_U8: u8 = u8::MAX;
const NULL_U16: u16 = u16::MAX;
const NULL_U32: u32 = u32::MAX;

/// A column's values, given piece by piece in row order (an in-memory [`Column`], or one spilled
/// to a file while a store is built): each `*_pieces` call runs once over the whole column.
pub(crate) trait Values {
    fn kind(&self) -> Kind;
    fn i32_pieces(&self, f: &mut dyn FnMut(&[i32]) -> io::Result<()>) -> io::Result<()>;
    fn id_pieces(&self, f: &mut dyn FnMut(&[i64]) -> io::Result<()>) -> io::Result<()>;
    fn f64_pieces(&self, f: &mut dyn FnMut(&[f64]) -> io::Result<()>) -> io::Result<()>;
    /// Text: the end offset of each row (the first row starts at 0), its bytes, its NULL flags.
    fn text_ends(&self, f: &mut dyn FnMut(&[u64]) -> io::Result<()>) -> io::Result<()>;
    fn text_bytes(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>;
    fn text_nulls(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()>;
}

/// The value type of a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    I32,
    Id,
    F64,
    Text,
}

impl Values for Column {
    fn kind(&self) -> Kind {
        match self {
            Column::I32(_) => Kind::I32,
            Column::Id(_) => Kind::Id,
            Column::Float(_) => Kind::F64,
            Column::Text(_) => Kind::Text,
        }
    }
    fn i32_pieces(&self, f: &mut dyn FnMut(&[i32]) -> io::Result<()>) -> io::Result<()> {
        f(self.as_i32().unwrap_or(&[]))
    }
    fn id_pieces(&self, f: &mut dyn FnMut(&[i64]) -> io::Result<()>) -> io::Result<()> {
        f(self.as_id().unwrap_or(&[]))
    }
    fn f64_pieces(&self, f: &mut dyn FnMut(&[f64]) -> io::Result<()>) -> io::Result<()> {
        f(self.as_f64().unwrap_or(&[]))
    }
    fn text_ends(&self, f: &mut dyn FnMut(&[u64]) -> io::Result<()>) -> io::Result<()> {
        f(self.as_text().map_or(&[][..], |t| &t.offsets[1..]))
    }
    fn text_bytes(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        f(self.as_text().map_or(&[][..], |t| &t.data))
    }
    fn text_nulls(&self, f: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        let nulls: Vec<u8> = self
            .as_text()
            .map_or(Vec::new(), |t| t.nulls.iter().map(|&b| b as u8).collect());
        f(&nulls)
    }
}

/// What decides a column's encoding, gathered in one pass over its values (see [`Stats::add`]).
#[derive(Debug, Clone)]
pub(crate) enum Stats {
    I32 {
        min: Option<i32>,
        max: Option<i32>,
        nulls: bool,
        /// The distinct non-NULL values (ascending) while there are at most 255.
        dict: Option<Vec<i32>>,
    },
    Id {
        min: Option<i64>,
        max: Option<i64>,
        nulls: bool,
        /// The distinct non-NULL values (ascending) while there are at most 255.
        dict: Option<Vec<i64>>,
        blocks: IdBlocks,
    },
    Float {
        /// Row 0's bits, and whether every row so far has them (and row 0 is not NaN).
        first: Option<u64>,
        same: bool,
    },
    Text {
        /// Row 0's value when not NULL, and whether every row so far holds it.
        first: Option<String>,
        same: bool,
        rows: u64,
        bytes: u64,
    },
}

impl Stats {
    pub fn new(kind: Kind) -> Stats {
        match kind {
            Kind::I32 => Stats::I32 {
                min: None,
                max: None,
                nulls: false,
                dict: Some(Vec::new()),
            },
            Kind::Id => Stats::Id {
                min: None,
                max: None,
                nulls: false,
                dict: Some(Vec::new()),
                blocks: IdBlocks::default(),
            },
            Kind::F64 => Stats::Float {
                first: None,
                same: true,
            },
            Kind::Text => Stats::Text {
                first: None,
                same: true,
                rows: 0,
                bytes: 0,
            },
        }
    }

    /// The statistics of a whole column in memory.
    pub fn of(col: &Column) -> Stats {
        let mut st = Stats::new(col.kind());
        match col {
            Column::I32(v) => v.iter().for_each(|&x| st.add_i32(x)),
            Column::Id(v) => v.iter().for_each(|&x| st.add_id(x)),
            Column::Float(v) => v.iter().for_each(|&x| st.add_f64(x)),
            Column::Text(t) => (0..t.len()).for_each(|i| st.add_text(t.get(i))),
        }
        st
    }

    pub fn add_i32(&mut self, x: i32) {
        if let Stats::I32 {
            min,
            max,
            nulls,
            dict,
        } = self
        {
            if x == NULL_INT {
                *nulls = true;
                return;
            }
            *min = Some(min.map_or(x, |m| m.min(x)));
            *max = Some(max.map_or(x, |m| m.max(x)));
            add_distinct(dict, x);
        }
    }

    pub fn add_id(&mut self, x: i64) {
        if let Stats::Id {
            min,
            max,
            nulls,
            dict,
            blocks,
        } = self
        {
            blocks.push(x);
            if x == NULL_ID {
                *nulls = true;
                return;
            }
            *min = Some(min.map_or(x, |m| m.min(x)));
            *max = Some(max.map_or(x, |m| m.max(x)));
            add_distinct(dict, x);
        }
    }

    pub fn add_f64(&mut self, x: f64) {
        if let Stats::Float { first, same } = self {
            match first {
                None if *same => {
                    *first = Some(x.to_bits());
                    *same = !x.is_nan();
                }
                Some(b) => *same = *same && *b == x.to_bits(),
                None => {}
            }
        }
    }

    pub fn add_text(&mut self, v: Option<&str>) {
        if let Stats::Text {
            first,
            same,
            rows,
            bytes,
        } = self
        {
            if *rows == 0 {
                *first = v.map(str::to_string);
                *same = v.is_some();
            } else {
                *same = *same && v.is_some() && first.as_deref() == v;
            }
            *rows += 1;
            *bytes += v.map_or(0, |s| s.len() as u64);
        }
    }
}

/// Rows per block of a 16-bit block encoding (a shift).
const BLOCK_SHIFT: usize = 6;
const BLOCK: usize = 1 << BLOCK_SHIFT;

/// The smallest non-NULL value of each 64 rows of an id column (0 for a block of NULLs), gathered
/// as the values come in row order, and whether every block's values lie within 16 bits of it.
#[derive(Debug, Clone)]
pub(crate) struct IdBlocks {
    blocks: Vec<i64>,
    rows: usize,
    /// The open block's smallest and largest non-NULL values.
    lo_hi: Option<(i64, i64)>,
    fits: bool,
}

impl Default for IdBlocks {
    fn default() -> Self {
        IdBlocks {
            blocks: Vec::new(),
            rows: 0,
            lo_hi: None,
            fits: true,
        }
    }
}

impl IdBlocks {
    fn push(&mut self, x: i64) {
        if self.rows > 0 && self.rows.is_multiple_of(BLOCK) {
            self.close();
        }
        if x != NULL_ID {
            self.lo_hi = Some(self.lo_hi.map_or((x, x), |(l, h)| (l.min(x), h.max(x))));
        }
        self.rows += 1;
    }
    fn close(&mut self) {
        let (lo, hi) = self.lo_hi.take().unwrap_or((0, 0));
        self.fits &= (hi as i128 - lo as i128) < NULL_U16 as i128;
        self.blocks.push(lo);
    }
    /// The block minima, if every block fits in 16 bits (`NULL_U16` apart).
    fn finished(&self) -> Option<Vec<i64>> {
        let mut b = self.clone();
        if b.rows > b.blocks.len() * BLOCK {
            b.close();
        }
        b.fits.then_some(b.blocks)
    }
}

/// Adds `x` to the distinct values while they are at most 255 (a code each, [`NULL_U8`] apart).
fn add_distinct<T: Ord>(dict: &mut Option<Vec<T>>, x: T) {
    if let Some(values) = dict {
        if let Err(i) = values.binary_search(&x) {
            if values.len() == NULL_U8 as usize {
                *dict = None;
            } else {
                values.insert(i, x);
            }
        }
    }
}

/// The dictionary codes of `v` (NULL, not in `values`, is [`NULL_U8`]).
fn dict_codes<T: Ord>(values: &[T], v: &[T]) -> Vec<u8> {
    v.iter()
        .map(|x| match values.binary_search(x) {
            Ok(i) => i as u8,
            Err(_) => NULL_U8,
        })
        .collect()
}

/// Writes `col` under `name`: in its smallest encoding if `encode`, else plain (columns that are
/// searched by value, such as concept ids and person attributes, stay plain slices).
pub(crate) fn write_encoded<W: Write>(
    w: &mut SectionWriter<W>,
    name: &str,
    col: &Column,
    encode: bool,
) -> io::Result<()> {
    write_values(w, name, col, &Stats::of(col), encode)
}

/// Writes a column given piece by piece, with its statistics: the same bytes as
/// [`write_encoded`] of the whole column.
pub(crate) fn write_values<W: Write>(
    w: &mut SectionWriter<W>,
    name: &str,
    col: &dyn Values,
    stats: &Stats,
    encode: bool,
) -> io::Result<()> {
    if !encode {
        return match col.kind() {
            Kind::I32 => w.section_from(name, |out| col.i32_pieces(out)),
            Kind::Id => w.section_from(name, |out| col.id_pieces(out)),
            Kind::F64 => w.section_from(name, |out| col.f64_pieces(out)),
            Kind::Text => write_text(w, name, col, stats),
        };
    }
    match stats {
        Stats::I32 {
            min,
            max,
            nulls,
            dict,
        } => {
            let constant = min.is_some() && min == max && !nulls;
            if let Some(values) = dict.as_ref().filter(|_| min.is_some() && !constant) {
                w.section(format!("{name}.dict"), values)?;
                return w.section_from(format!("{name}.u8"), |out| {
                    col.i32_pieces(&mut |v| out(&dict_codes(values, v)))
                });
            }
            match (*min, *max) {
                (Some(a), Some(b)) if a == b && !nulls => w.section(format!("{name}.const"), &[a]),
                (Some(a), Some(b)) if (b as i64 - a as i64) < NULL_U16 as i64 => {
                    w.section(format!("{name}.base"), &[a])?;
                    w.section_from(format!("{name}.u16"), |out| {
                        col.i32_pieces(&mut |v| {
                            let codes: Vec<u16> = v
                                .iter()
                                .map(|&x| {
                                    if x == NULL_INT {
                                        NULL_U16
                                    } else {
                                        (x as i64 - a as i64) as u16
                                    }
                                })
                                .collect();
                            out(&codes)
                        })
                    })
                }
                _ => w.section_from(name, |out| col.i32_pieces(out)),
            }
        }
        Stats::Id {
            min,
            max,
            nulls,
            dict,
            blocks,
        } => match (*min, *max) {
            (Some(a), Some(b)) if a == b && !nulls => w.section(format!("{name}.const"), &[a]),
            (Some(_), Some(_)) if dict.is_some() => {
                let values = dict.as_deref().unwrap_or_default();
                w.section(format!("{name}.dict"), values)?;
                w.section_from(format!("{name}.u8"), |out| {
                    col.id_pieces(&mut |v| out(&dict_codes(values, v)))
                })
            }
            (Some(_), Some(_)) if blocks.finished().is_some() => {
                let blocks = blocks.finished().unwrap_or_default();
                w.section(format!("{name}.blocks"), &blocks)?;
                let mut r = 0usize;
                w.section_from(format!("{name}.u16"), |out| {
                    col.id_pieces(&mut |v| {
                        let codes: Vec<u16> = v
                            .iter()
                            .enumerate()
                            .map(|(i, &x)| match x {
                                NULL_ID => NULL_U16,
                                x => x.wrapping_sub(blocks[(r + i) >> BLOCK_SHIFT]) as u16,
                            })
                            .collect();
                        r += v.len();
                        out(&codes)
                    })
                })
            }
            (Some(a), Some(b)) if (b as i128 - a as i128) < NULL_U32 as i128 => {
                w.section(format!("{name}.base"), &[a])?;
                w.section_from(format!("{name}.u32"), |out| {
                    col.id_pieces(&mut |v| {
                        let codes: Vec<u32> = v
                            .iter()
                            .map(|&x| {
                                if x == NULL_ID {
                                    NULL_U32
                                } else {
                                    (x as i128 - a as i128) as u32
                                }
                            })
                            .collect();
                        out(&codes)
                    })
                })
            }
            _ => w.section_from(name, |out| col.id_pieces(out)),
        },
        Stats::Float { first, same } => match first {
            Some(bits) if *same => w.section(format!("{name}.const"), &[f64::from_bits(*bits)]),
            _ => w.section_from(name, |out| col.f64_pieces(out)),
        },
        Stats::Text { first, same, .. } => match first {
            Some(s) if *same => w.section(format!("{name}.text_const"), s.as_bytes()),
            _ => write_text(w, name, col, stats),
        },
    }
}

fn write_text<W: Write>(
    w: &mut SectionWriter<W>,
    name: &str,
    col: &dyn Values,
    stats: &Stats,
) -> io::Result<()> {
    let bytes = match stats {
        Stats::Text { bytes, .. } => *bytes,
        _ => 0,
    };
    // 32-bit offsets unless the column holds 4 GiB of text or more.
    if u32::try_from(bytes).is_ok() {
        w.section_from(format!("{name}.offsets"), |out| {
            out(&[0u32])?;
            col.text_ends(&mut |v| {
                let narrow: Vec<u32> = v.iter().map(|&o| o as u32).collect();
                out(&narrow)
            })
        })?;
    } else {
        w.section_from(format!("{name}.offsets"), |out| {
            out(&[0u64])?;
            col.text_ends(out)
        })?;
    }
    w.section_from(format!("{name}.data"), |out| col.text_bytes(out))?;
    w.section_from(format!("{name}.nulls"), |out| col.text_nulls(out))
}

/// The sections of one encoded column, as found in the table of contents.
pub(crate) struct Parts<'a> {
    pub plain: Option<(DType, &'a [u8])>,
    pub constant: Option<(DType, &'a [u8])>,
    pub base: Option<(DType, &'a [u8])>,
    pub u16: Option<&'a [u16]>,
    pub u32: Option<&'a [u32]>,
    pub text_const: Option<&'a [u8]>,
    pub text: Option<TextRef<'a>>,
    pub dict: Option<&'a [i32]>,
    pub dict64: Option<&'a [i64]>,
    pub u8: Option<&'a [u8]>,
    pub blocks: Option<&'a [i64]>,
}

/// Builds the typed view of a column of `rows` rows from its sections (None if inconsistent).
pub(crate) fn view<'a>(p: Parts<'a>, rows: usize) -> Option<ColumnRef<'a>> {
    let one = |(dtype, bytes): (DType, &'a [u8]), want: DType| -> Option<&'a [u8]> {
        (dtype == want).then_some(bytes)
    };
    if let Some(t) = p.text {
        return (t.len() == rows).then_some(ColumnRef::Text(t));
    }
    if let Some(bytes) = p.text_const {
        let s = std::str::from_utf8(bytes).ok()?;
        return Some(ColumnRef::Text(TextRef {
            enc: TextEnc::Const(s, rows),
        }));
    }
    if let Some((dtype, bytes)) = p.plain {
        let col = match dtype {
            DType::I32 => ColumnRef::I32(I32Column(I32Enc::Plain(
                bytemuck::try_cast_slice(bytes).ok()?,
            ))),
            DType::I64 => ColumnRef::Id(IdColumn(IdEnc::Plain(
                bytemuck::try_cast_slice(bytes).ok()?,
            ))),
            DType::F64 => ColumnRef::Float(FloatColumn(FloatEnc::Plain(
                bytemuck::try_cast_slice(bytes).ok()?,
            ))),
            _ => return None,
        };
        return (col.len() == rows).then_some(col);
    }
    if let Some(c) = p.constant {
        return Some(match c.0 {
            DType::I32 => ColumnRef::I32(I32Column(I32Enc::Const(
                *bytemuck::try_from_bytes(one(c, DType::I32)?).ok()?,
                rows,
            ))),
            DType::I64 => ColumnRef::Id(IdColumn(IdEnc::Const(
                *bytemuck::try_from_bytes(one(c, DType::I64)?).ok()?,
                rows,
            ))),
            DType::F64 => ColumnRef::Float(FloatColumn(FloatEnc::Const(
                *bytemuck::try_from_bytes(one(c, DType::F64)?).ok()?,
                rows,
            ))),
            _ => return None,
        });
    }
    if let (Some(values), Some(codes)) = (p.dict, p.u8) {
        return (codes.len() == rows && values.len() < NULL_U8 as usize)
            .then_some(ColumnRef::I32(I32Column(I32Enc::Dict { values, codes })));
    }
    if let (Some(values), Some(codes)) = (p.dict64, p.u8) {
        return (codes.len() == rows && values.len() < NULL_U8 as usize)
            .then_some(ColumnRef::Id(IdColumn(IdEnc::Dict { values, codes })));
    }
    if let (Some(blocks), Some(codes)) = (p.blocks, p.u16) {
        return (codes.len() == rows && blocks.len() == rows.div_ceil(BLOCK))
            .then_some(ColumnRef::Id(IdColumn(IdEnc::Blocks { blocks, codes })));
    }
    let base = p.base?;
    if let Some(codes) = p.u16 {
        let base: i32 = *bytemuck::try_from_bytes(one(base, DType::I32)?).ok()?;
        return (codes.len() == rows)
            .then_some(ColumnRef::I32(I32Column(I32Enc::U16 { base, codes })));
    }
    if let Some(codes) = p.u32 {
        let base: i64 = *bytemuck::try_from_bytes(one(base, DType::I64)?).ok()?;
        return (codes.len() == rows)
            .then_some(ColumnRef::Id(IdColumn(IdEnc::U32 { base, codes })));
    }
    None
}

/// A typed view of one attribute column. NULL reads as `i64::MIN`, `i32::MIN`, NaN or `None`.
#[derive(Clone, Copy, Debug)]
pub enum ColumnRef<'a> {
    /// 64-bit ids.
    Id(IdColumn<'a>),
    /// Concept ids, integers and dates (days since 1970-01-01).
    I32(I32Column<'a>),
    Float(FloatColumn<'a>),
    Text(TextRef<'a>),
}

impl<'a> ColumnRef<'a> {
    pub fn len(&self) -> usize {
        match self {
            ColumnRef::Id(c) => c.len(),
            ColumnRef::I32(c) => c.len(),
            ColumnRef::Float(c) => c.len(),
            ColumnRef::Text(t) => t.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Element-wise consistency (text offsets and encoding), for [`crate::Store::verify`].
    pub(crate) fn verify(&self) -> bool {
        match self {
            ColumnRef::Text(t) => t.verify(),
            ColumnRef::I32(I32Column(I32Enc::Dict { values, codes })) => dict_ok(values, codes),
            ColumnRef::Id(IdColumn(IdEnc::Dict { values, codes })) => dict_ok(values, codes),
            _ => true,
        }
    }
    pub fn as_id(self) -> Option<IdColumn<'a>> {
        match self {
            ColumnRef::Id(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_i32(self) -> Option<I32Column<'a>> {
        match self {
            ColumnRef::I32(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_f64(self) -> Option<FloatColumn<'a>> {
        match self {
            ColumnRef::Float(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_text(self) -> Option<TextRef<'a>> {
        match self {
            ColumnRef::Text(t) => Some(t),
            _ => None,
        }
    }
    /// Asks the CPU to start loading row `r` (a hint for rows about to be read at random; text
    /// columns are not prefetched).
    #[inline]
    pub fn prefetch(&self, r: usize) {
        match self {
            ColumnRef::Id(c) => c.prefetch(r),
            ColumnRef::I32(c) => c.prefetch(r),
            ColumnRef::Float(c) => match c.0 {
                FloatEnc::Plain(v) => prefetch(v, r),
                FloatEnc::Const(..) => {}
            },
            ColumnRef::Text(_) => {}
        }
    }
    /// Row `r` as a number (None if NULL, text, or out of range).
    pub fn number(&self, r: usize) -> Option<f64> {
        match self {
            ColumnRef::Id(c) => c.get(r).filter(|&x| x != NULL_ID).map(|x| x as f64),
            ColumnRef::I32(c) => c.get(r).filter(|&x| x != NULL_INT).map(f64::from),
            ColumnRef::Float(c) => c.get(r).filter(|x| !x.is_nan()),
            ColumnRef::Text(_) => None,
        }
    }
}

/// Dictionary values ascending and every code NULL or one of them.
fn dict_ok<T: Ord>(values: &[T], codes: &[u8]) -> bool {
    values.windows(2).all(|w| w[0] < w[1])
        && codes
            .iter()
            .all(|&c| c == NULL_U8 || (c as usize) < values.len())
}

/// Asks the CPU to start loading `s[i]` into its caches (nothing if `i` is out of bounds): for
/// loads known ahead, so that many cache misses are in flight at once.
#[inline(always)]
pub fn prefetch<T>(s: &[T], i: usize) {
    #[cfg(target_arch = "x86_64")]
    if let Some(x) = s.get(i) {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        // SAFETY: a prefetch is only a hint: it loads nothing into the program and cannot fault
        // (the address is in bounds anyway); SSE is part of the x86_64 baseline.
        unsafe { _mm_prefetch::<_MM_HINT_T0>((x as *const T).cast()) }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (s, i);
}

#[derive(Clone, Copy, Debug)]
enum I32Enc<'a> {
    Plain(&'a [i32]),
    Const(i32, usize),
    U16 {
        base: i32,
        codes: &'a [u16],
    },
    Dict {
        values: &'a [i32],
        codes: &'a [u8],
    },
    /// A core date column (an event table's start or end) answering for its CDM column.
    Days(DayColumn<'a>),
}

impl<'a> From<DayColumn<'a>> for I32Column<'a> {
    fn from(d: DayColumn<'a>) -> Self {
        I32Column(I32Enc::Days(d))
    }
}

/// An i32 column (concepts, integers, dates). `get` is like `slice.get(r).copied()`.
#[derive(Clone, Copy, Debug)]
pub struct I32Column<'a>(I32Enc<'a>);

impl<'a> I32Column<'a> {
    /// A column over a plain slice (e.g. a core column).
    pub fn from_slice(v: &'a [i32]) -> Self {
        I32Column(I32Enc::Plain(v))
    }
    pub fn len(&self) -> usize {
        match self.0 {
            I32Enc::Plain(v) => v.len(),
            I32Enc::Const(_, n) => n,
            I32Enc::U16 { codes, .. } => codes.len(),
            I32Enc::Dict { codes, .. } => codes.len(),
            I32Enc::Days(d) => d.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `r` (`Some(i32::MIN)` for NULL), None past the end.
    #[inline]
    pub fn get(&self, r: usize) -> Option<i32> {
        match self.0 {
            I32Enc::Plain(v) => v.get(r).copied(),
            I32Enc::Const(x, n) => (r < n).then_some(x),
            I32Enc::U16 { base, codes } => codes.get(r).map(|&c| {
                if c == NULL_U16 {
                    NULL_INT
                } else {
                    base + c as i32
                }
            }),
            // A code past the dictionary (a damaged file, see `verify`) reads as NULL.
            I32Enc::Dict { values, codes } => codes
                .get(r)
                .map(|&c| values.get(c as usize).copied().unwrap_or(NULL_INT)),
            I32Enc::Days(d) => d.get(r),
        }
    }
    /// Asks the CPU to start loading row `r` (see [`prefetch`]).
    #[inline(always)]
    pub fn prefetch(&self, r: usize) {
        match self.0 {
            I32Enc::Plain(v) => prefetch(v, r),
            I32Enc::U16 { codes, .. } => prefetch(codes, r),
            I32Enc::Dict { codes, .. } => prefetch(codes, r),
            I32Enc::Days(d) => d.prefetch(r),
            I32Enc::Const(..) => {}
        }
    }
    /// The values as a slice, when stored plain.
    pub fn as_slice(&self) -> Option<&'a [i32]> {
        match self.0 {
            I32Enc::Plain(v) => Some(v),
            I32Enc::Days(d) => d.as_slice(),
            _ => None,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = i32> + '_ {
        (0..self.len()).filter_map(|r| self.get(r))
    }
    pub fn to_vec(&self) -> Vec<i32> {
        self.iter().collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum IdEnc<'a> {
    Plain(&'a [i64]),
    Const(i64, usize),
    U32 { base: i64, codes: &'a [u32] },
    Dict { values: &'a [i64], codes: &'a [u8] },
    Blocks { blocks: &'a [i64], codes: &'a [u16] },
}

/// An i64 id column. `get` is like `slice.get(r).copied()`; it compares equal to a slice of the
/// same values.
#[derive(Clone, Copy)]
pub struct IdColumn<'a>(IdEnc<'a>);

impl std::fmt::Debug for IdColumn<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl PartialEq for IdColumn<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl PartialEq<[i64]> for IdColumn<'_> {
    fn eq(&self, other: &[i64]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().copied())
    }
}

impl PartialEq<&[i64]> for IdColumn<'_> {
    fn eq(&self, other: &&[i64]) -> bool {
        *self == **other
    }
}

impl<const N: usize> PartialEq<&[i64; N]> for IdColumn<'_> {
    fn eq(&self, other: &&[i64; N]) -> bool {
        *self == other[..]
    }
}

impl PartialEq<Vec<i64>> for IdColumn<'_> {
    fn eq(&self, other: &Vec<i64>) -> bool {
        *self == other[..]
    }
}

impl PartialEq<IdColumn<'_>> for Vec<i64> {
    fn eq(&self, other: &IdColumn<'_>) -> bool {
        *other == self[..]
    }
}

impl<'a> IdColumn<'a> {
    pub fn from_slice(v: &'a [i64]) -> Self {
        IdColumn(IdEnc::Plain(v))
    }
    pub fn len(&self) -> usize {
        match self.0 {
            IdEnc::Plain(v) => v.len(),
            IdEnc::Const(_, n) => n,
            IdEnc::U32 { codes, .. } => codes.len(),
            IdEnc::Dict { codes, .. } => codes.len(),
            IdEnc::Blocks { codes, .. } => codes.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `r` (`Some(i64::MIN)` for NULL), None past the end.
    #[inline]
    pub fn get(&self, r: usize) -> Option<i64> {
        match self.0 {
            IdEnc::Plain(v) => v.get(r).copied(),
            IdEnc::Const(x, n) => (r < n).then_some(x),
            IdEnc::U32 { base, codes } => codes.get(r).map(|&c| {
                if c == NULL_U32 {
                    NULL_ID
                } else {
                    base + c as i64
                }
            }),
            // A code past the dictionary (a damaged file, see `verify`) reads as NULL.
            IdEnc::Dict { values, codes } => codes
                .get(r)
                .map(|&c| values.get(c as usize).copied().unwrap_or(NULL_ID)),
            IdEnc::Blocks { blocks, codes } => {
                let c = *codes.get(r)?;
                if c == NULL_U16 {
                    return Some(NULL_ID);
                }
                blocks
                    .get(r >> BLOCK_SHIFT)
                    .map(|&b| b.wrapping_add(c as i64))
            }
        }
    }
    pub fn as_slice(&self) -> Option<&'a [i64]> {
        match self.0 {
            IdEnc::Plain(v) => Some(v),
            _ => None,
        }
    }
    /// Asks the CPU to start loading row `r` (see [`prefetch`]).
    #[inline(always)]
    pub fn prefetch(&self, r: usize) {
        match self.0 {
            IdEnc::Plain(v) => prefetch(v, r),
            IdEnc::U32 { codes, .. } => prefetch(codes, r),
            IdEnc::Dict { codes, .. } => prefetch(codes, r),
            IdEnc::Blocks { codes, .. } => prefetch(codes, r),
            IdEnc::Const(..) => {}
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = i64> + '_ {
        (0..self.len()).filter_map(|r| self.get(r))
    }
    pub fn to_vec(&self) -> Vec<i64> {
        self.iter().collect()
    }
}

#[derive(Clone, Copy, Debug)]
enum FloatEnc<'a> {
    Plain(&'a [f64]),
    Const(f64, usize),
}

/// A floating-point column. `get` is like `slice.get(r).copied()` (NaN for NULL).
#[derive(Clone, Copy, Debug)]
pub struct FloatColumn<'a>(FloatEnc<'a>);

impl FloatColumn<'_> {
    pub fn len(&self) -> usize {
        match self.0 {
            FloatEnc::Plain(v) => v.len(),
            FloatEnc::Const(_, n) => n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    #[inline]
    pub fn get(&self, r: usize) -> Option<f64> {
        match self.0 {
            FloatEnc::Plain(v) => v.get(r).copied(),
            FloatEnc::Const(x, n) => (r < n).then_some(x),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = f64> + '_ {
        (0..self.len()).filter_map(|r| self.get(r))
    }
}

/// Text offsets: 32-bit unless a column holds 4 GiB of text or more.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Offsets<'a> {
    Narrow(&'a [u32]),
    Wide(&'a [u64]),
}

impl Offsets<'_> {
    fn len(&self) -> usize {
        match self {
            Offsets::Narrow(v) => v.len(),
            Offsets::Wide(v) => v.len(),
        }
    }
    fn get(&self, i: usize) -> Option<usize> {
        match self {
            Offsets::Narrow(v) => v.get(i).map(|&o| o as usize),
            Offsets::Wide(v) => v.get(i).map(|&o| o as usize),
        }
    }
    /// Offsets into `len` bytes: start at 0 and end at `len` (constant time; whether they never
    /// decrease is [`TextRef::verify`]'s to check).
    fn valid_for(&self, len: usize) -> bool {
        let n = self.len();
        n > 0 && self.get(0) == Some(0) && self.get(n - 1) == Some(len)
    }
}

#[derive(Clone, Copy, Debug)]
enum TextEnc<'a> {
    Stored {
        offsets: Offsets<'a>,
        data: &'a [u8],
        nulls: &'a [u8],
    },
    Const(&'a str, usize),
}

/// A text column.
#[derive(Clone, Copy, Debug)]
pub struct TextRef<'a> {
    enc: TextEnc<'a>,
}

impl<'a> TextRef<'a> {
    /// A stored text column, if its parts agree.
    pub(crate) fn stored(offsets: Offsets<'a>, data: &'a [u8], nulls: &'a [u8]) -> Option<Self> {
        (offsets.len() == nulls.len() + 1 && offsets.valid_for(data.len())).then_some(TextRef {
            enc: TextEnc::Stored {
                offsets,
                data,
                nulls,
            },
        })
    }
    /// Offsets never decrease and every non-NULL value is UTF-8 (a full scan, for
    /// [`crate::Store::verify`]).
    fn verify(&self) -> bool {
        match self.enc {
            TextEnc::Stored {
                offsets,
                data,
                nulls,
            } => (0..nulls.len()).all(|i| match (offsets.get(i), offsets.get(i + 1)) {
                (Some(a), Some(b)) if a <= b => {
                    nulls[i] != 0
                        || data
                            .get(a..b)
                            .is_some_and(|v| std::str::from_utf8(v).is_ok())
                }
                _ => false,
            }),
            TextEnc::Const(..) => true,
        }
    }
    pub fn len(&self) -> usize {
        match self.enc {
            TextEnc::Stored { nulls, .. } => nulls.len(),
            TextEnc::Const(_, n) => n,
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Row `i`'s text, None if NULL (or out of range).
    pub fn get(&self, i: usize) -> Option<&'a str> {
        match self.enc {
            TextEnc::Stored {
                offsets,
                data,
                nulls,
            } => {
                if *nulls.get(i)? != 0 {
                    return None;
                }
                std::str::from_utf8(data.get(offsets.get(i)?..offsets.get(i + 1)?)?).ok()
            }
            TextEnc::Const(s, n) => (i < n).then_some(s),
        }
    }
}

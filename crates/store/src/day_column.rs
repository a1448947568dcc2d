//! An event table's start and end dates (days since 1970-01-01), stored as frame-of-reference
//! blocks: rows are sorted by person and start date, so the dates of 64 consecutive rows lie
//! within a few years of each other.
//!
//! | encoding | sections | when |
//! |---|---|---|
//! | 16-bit blocks | `NAME.blocks` (i32: the smallest date of each 64 rows), `NAME.u16` | every block's dates within 65,535 days (179 years) of its smallest |
//! | plain | `NAME` (i32) | otherwise (e.g. a NULL end date) |
//!
//! Row `r`'s date is `blocks[r / 64] + code[r]`: one add, nothing decoded on the query path. Both
//! ways of building a store feed the same [`DayBlocks`] as the rows come, in order, and write the
//! codes from the same values: the same bytes. What is held while building is the block minima
//! (4 bytes per 64 rows).

use std::io;

use crate::format::SectionWriter;

/// Rows per block (a shift).
const BLOCK_SHIFT: usize = 6;
const BLOCK: usize = 1 << BLOCK_SHIFT;

#[derive(Clone, Copy, Debug)]
enum Enc<'a> {
    Plain(&'a [i32]),
    U16 { blocks: &'a [i32], codes: &'a [u16] },
}

/// The start or end date of each row of an event table. `get` is like `slice.get(r).copied()`.
#[derive(Clone, Copy, Debug)]
pub struct DayColumn<'a>(Enc<'a>);

impl<'a> DayColumn<'a> {
    pub fn from_slice(v: &'a [i32]) -> Self {
        DayColumn(Enc::Plain(v))
    }
    pub(crate) fn u16(blocks: &'a [i32], codes: &'a [u16]) -> Self {
        DayColumn(Enc::U16 { blocks, codes })
    }
    pub fn len(&self) -> usize {
        match self.0 {
            Enc::Plain(v) => v.len(),
            Enc::U16 { codes, .. } => codes.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The blocks' length is right for the codes (or the column is plain): checked on open.
    pub(crate) fn well_formed(&self) -> bool {
        match self.0 {
            Enc::Plain(_) => true,
            Enc::U16 { blocks, codes } => blocks.len() == codes.len().div_ceil(BLOCK),
        }
    }
    /// Row `r`'s date, None past the end.
    #[inline]
    pub fn get(&self, r: usize) -> Option<i32> {
        match self.0 {
            Enc::Plain(v) => v.get(r).copied(),
            Enc::U16 { blocks, codes } => {
                let c = *codes.get(r)?;
                blocks
                    .get(r >> BLOCK_SHIFT)
                    .map(|&b| b.wrapping_add(c as i32))
            }
        }
    }
    /// Row `r`'s date; panics past the end (as indexing a slice does).
    #[inline]
    pub fn at(&self, r: usize) -> i32 {
        match self.get(r) {
            Some(d) => d,
            None => panic!(
                "row {r} out of range for a date column of {} rows",
                self.len()
            ),
        }
    }
    /// Asks the CPU to start loading row `r` (see [`crate::prefetch`]); the block minima are
    /// 1/64 of the rows and mostly cached.
    #[inline(always)]
    pub fn prefetch(&self, r: usize) {
        match self.0 {
            Enc::Plain(v) => crate::prefetch(v, r),
            Enc::U16 { codes, .. } => crate::prefetch(codes, r),
        }
    }
    /// The first row of `rows` whose date makes `pred` false, for dates ascending over `rows`
    /// (rows' start dates within one person): like `slice[rows].partition_point(pred)`, as a row.
    pub fn partition_point(
        &self,
        rows: std::ops::Range<usize>,
        pred: impl Fn(i32) -> bool,
    ) -> usize {
        let (mut lo, mut hi) = (rows.start, rows.end.min(self.len()).max(rows.start));
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).is_some_and(&pred) {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
    /// The values as a slice, when stored plain.
    pub fn as_slice(&self) -> Option<&'a [i32]> {
        match self.0 {
            Enc::Plain(v) => Some(v),
            Enc::U16 { .. } => None,
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = i32> + 'a {
        let c = *self;
        (0..c.len()).filter_map(move |r| c.get(r))
    }
    pub fn to_vec(&self) -> Vec<i32> {
        self.iter().collect()
    }
}

impl PartialEq for DayColumn<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl PartialEq<[i32]> for DayColumn<'_> {
    fn eq(&self, other: &[i32]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().copied())
    }
}

impl<const N: usize> PartialEq<&[i32; N]> for DayColumn<'_> {
    fn eq(&self, other: &&[i32; N]) -> bool {
        *self == other[..]
    }
}

impl PartialEq<&[i32]> for DayColumn<'_> {
    fn eq(&self, other: &&[i32]) -> bool {
        *self == **other
    }
}

/// The block minima of a date column, gathered as its values come in row order.
#[derive(Debug, Clone)]
pub(crate) struct DayBlocks {
    blocks: Vec<i32>,
    rows: usize,
    /// The current block's largest value.
    hi: i32,
    /// Every closed block's values within 16 bits of its minimum.
    fits: bool,
}

impl DayBlocks {
    pub fn new() -> DayBlocks {
        DayBlocks {
            blocks: Vec::new(),
            rows: 0,
            hi: i32::MIN,
            fits: true,
        }
    }
    #[inline]
    pub fn push(&mut self, v: i32) {
        if self.rows & (BLOCK - 1) == 0 {
            self.close();
            self.blocks.push(v);
            self.hi = v;
        } else {
            let lo = self.blocks.last_mut().expect("a block is open");
            *lo = (*lo).min(v);
            self.hi = self.hi.max(v);
        }
        self.rows += 1;
    }
    fn close(&mut self) {
        if let Some(&lo) = self.blocks.last() {
            self.fits &= (self.hi as i64 - lo as i64) <= u16::MAX as i64;
        }
    }
    pub fn extend(&mut self, vs: &[i32]) {
        vs.iter().for_each(|&v| self.push(v));
    }

    /// Writes the column `name` whose values `fill` gives in pieces (the values pushed, in the
    /// same order) in the narrowest encoding that fits (see the module's table).
    pub fn write<W: io::Write>(
        mut self,
        w: &mut SectionWriter<W>,
        name: &str,
        mut fill: impl FnMut(&mut dyn FnMut(&[i32]) -> io::Result<()>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.close();
        if !self.fits {
            return w.section_from(name, fill);
        }
        w.section(format!("{name}.blocks"), &self.blocks)?;
        let blocks = &self.blocks;
        let mut codes: Vec<u16> = Vec::new();
        let mut r = 0usize;
        w.section_from(format!("{name}.u16"), |out| {
            fill(&mut |piece: &[i32]| {
                codes.clear();
                codes.extend(piece.iter().enumerate().map(|(i, &v)| {
                    let b = blocks[(r + i) >> BLOCK_SHIFT];
                    v.wrapping_sub(b) as u16
                }));
                r += piece.len();
                out(&codes)
            })
        })
    }
}

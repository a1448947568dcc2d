//! An event table's person column (the person index of each row), stored as frame-of-reference
//! blocks: rows are sorted by person, so the persons of 64 consecutive rows lie close together.
//!
//! | encoding | sections | when |
//! |---|---|---|
//! | 8-bit blocks | `person.blocks` (u32: the first row's person, per 64 rows), `person.u8` | every block's persons within 255 of its first |
//! | 16-bit blocks | `person.blocks`, `person.u16` | within 65,535 |
//! | plain | `person` (u32) | otherwise |
//!
//! Row `r`'s person is `blocks[r / 64] + code[r]`: one add, nothing decoded on the query path. The
//! column is written from the per-person offsets alone (they say which rows are whose), so both
//! ways of building a store give the same bytes, and nothing that grows with rows is held but the
//! block starts (4 bytes per 64 rows).

use std::io::{self, Write};

use crate::format::SectionWriter;

/// Rows per block (a shift).
pub(crate) const BLOCK_SHIFT: usize = 6;
const BLOCK: usize = 1 << BLOCK_SHIFT;
/// Codes written per piece.
const PIECE: usize = 1 << 16;

#[derive(Clone, Copy, Debug)]
enum Enc<'a> {
    Plain(&'a [u32]),
    U8 { blocks: &'a [u32], codes: &'a [u8] },
    U16 { blocks: &'a [u32], codes: &'a [u16] },
}

/// The person index of each row of an event table (ascending). `get` is like
/// `slice.get(r).copied()`.
#[derive(Clone, Copy, Debug)]
pub struct PersonColumn<'a>(Enc<'a>);

impl<'a> PersonColumn<'a> {
    pub fn from_slice(v: &'a [u32]) -> Self {
        PersonColumn(Enc::Plain(v))
    }
    pub(crate) fn u8(blocks: &'a [u32], codes: &'a [u8]) -> Self {
        PersonColumn(Enc::U8 { blocks, codes })
    }
    pub(crate) fn u16(blocks: &'a [u32], codes: &'a [u16]) -> Self {
        PersonColumn(Enc::U16 { blocks, codes })
    }
    pub fn len(&self) -> usize {
        match self.0 {
            Enc::Plain(v) => v.len(),
            Enc::U8 { codes, .. } => codes.len(),
            Enc::U16 { codes, .. } => codes.len(),
        }
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The number of block starts a column of `rows` rows has (checked when a store is opened).
    pub(crate) fn blocks_for(rows: usize) -> usize {
        rows.div_ceil(BLOCK)
    }
    /// The blocks' length is right for the codes (or the column is plain).
    pub(crate) fn well_formed(&self) -> bool {
        match self.0 {
            Enc::Plain(_) => true,
            Enc::U8 { blocks, codes } => blocks.len() == Self::blocks_for(codes.len()),
            Enc::U16 { blocks, codes } => blocks.len() == Self::blocks_for(codes.len()),
        }
    }
    /// Row `r`'s person index, None past the end.
    #[inline]
    pub fn get(&self, r: usize) -> Option<u32> {
        let block = |blocks: &[u32]| blocks.get(r >> BLOCK_SHIFT).copied();
        match self.0 {
            Enc::Plain(v) => v.get(r).copied(),
            Enc::U8 { blocks, codes } => {
                let c = *codes.get(r)?;
                block(blocks).map(|b| b.wrapping_add(c as u32))
            }
            Enc::U16 { blocks, codes } => {
                let c = *codes.get(r)?;
                block(blocks).map(|b| b.wrapping_add(c as u32))
            }
        }
    }
    /// Asks the CPU to start loading row `r` (see [`crate::prefetch`]); the block starts are
    /// 1/64 of the rows and mostly cached.
    #[inline(always)]
    pub fn prefetch(&self, r: usize) {
        match self.0 {
            Enc::Plain(v) => crate::prefetch(v, r),
            Enc::U8 { codes, .. } => crate::prefetch(codes, r),
            Enc::U16 { codes, .. } => crate::prefetch(codes, r),
        }
    }
    pub fn iter(&self) -> impl Iterator<Item = u32> + '_ {
        (0..self.len()).filter_map(|r| self.get(r))
    }
    pub fn to_vec(&self) -> Vec<u32> {
        self.iter().collect()
    }
}

impl PartialEq for PersonColumn<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl PartialEq<[u32]> for PersonColumn<'_> {
    fn eq(&self, other: &[u32]) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter().copied())
    }
}

impl<const N: usize> PartialEq<&[u32; N]> for PersonColumn<'_> {
    fn eq(&self, other: &&[u32; N]) -> bool {
        *self == other[..]
    }
}

/// Each row's person, from per-person offsets (monotone, one more than persons).
fn persons_by_row(offsets: &[u32]) -> impl Iterator<Item = u32> + '_ {
    offsets
        .windows(2)
        .enumerate()
        .flat_map(|(p, w)| std::iter::repeat_n(p as u32, (w[1] - w[0]) as usize))
}

/// Writes `{prefix}/person` of a table whose rows are grouped by person as `offsets` says, in the
/// narrowest encoding that fits (see the module's table).
pub(crate) fn write<W: Write>(
    w: &mut SectionWriter<W>,
    prefix: &str,
    offsets: &[u32],
) -> io::Result<()> {
    // Pass 1: each block's first person, and the widest block.
    let mut blocks = Vec::new();
    let mut span = 0u32;
    for (r, p) in persons_by_row(offsets).enumerate() {
        if r % BLOCK == 0 {
            blocks.push(p);
        }
        span = span.max(p - blocks[blocks.len() - 1]);
    }
    let name = format!("{prefix}/person");
    // Pass 2: the codes, piece by piece.
    fn codes<T: crate::format::Element>(
        offsets: &[u32],
        code: impl Fn(usize, u32) -> T,
        out: &mut dyn FnMut(&[T]) -> io::Result<()>,
    ) -> io::Result<()> {
        let mut piece = Vec::with_capacity(PIECE);
        for (r, p) in persons_by_row(offsets).enumerate() {
            piece.push(code(r, p));
            if piece.len() == PIECE {
                out(&piece)?;
                piece.clear();
            }
        }
        out(&piece)
    }
    if span <= u8::MAX as u32 {
        w.section(format!("{name}.blocks"), &blocks)?;
        w.section_from(format!("{name}.u8"), |out| {
            codes(offsets, |r, p| (p - blocks[r >> BLOCK_SHIFT]) as u8, out)
        })
    } else if span <= u16::MAX as u32 {
        w.section(format!("{name}.blocks"), &blocks)?;
        w.section_from(format!("{name}.u16"), |out| {
            codes(offsets, |r, p| (p - blocks[r >> BLOCK_SHIFT]) as u16, out)
        })
    } else {
        w.section_from(name, |out| codes(offsets, |_, p| p, out))
    }
}

//! The on-disk layout of a Qiao store: one file of aligned, checksummed sections.
//!
//! ```text
//! header   64 bytes   magic "QIAOSTOR", format version (u32 LE), zero padding
//! sections            each starts on a 64-byte boundary; raw little-endian arrays
//! toc                 JSON: format version, metadata, and per section {name, offset, len, dtype, crc32}
//! footer   32 bytes   toc offset (u64), toc length (u64), toc crc32 (u32), format version (u32), magic "QIAOEND\0"
//! ```
//! Opening reads the header, the footer and the table of contents, checks every section's bounds
//! and alignment, and memory-maps the rest: no data page is read, so opening takes the same time
//! whatever the store's size. The sections' checksums are checked by `Store::verify` (`qiao store
//! verify`, and by every write before the file takes its name).

use std::io::{self, Write};

use serde::{Deserialize, Serialize};

use crate::meta::Meta;

pub const MAGIC: &[u8; 8] = b"QIAOSTOR";
pub const FOOTER_MAGIC: &[u8; 8] = b"QIAOEND\0";
/// Bump on any change of layout or meaning; older versions are refused with a clear error.
pub const FORMAT_VERSION: u32 = 5;
pub const HEADER_LEN: usize = 64;
pub const FOOTER_LEN: usize = 32;
pub const ALIGN: usize = 64;

/// The element type of a section.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DType {
    U8,
    U16,
    I32,
    U32,
    I64,
    U64,
    F64,
    /// [`crate::PersonSummary`]: person id (i64), single observation period start and end (i32).
    PersonSummary,
}

impl DType {
    pub fn size(self) -> usize {
        match self {
            DType::U8 => 1,
            DType::U16 => 2,
            DType::I32 | DType::U32 => 4,
            DType::I64 | DType::U64 | DType::F64 => 8,
            DType::PersonSummary => 16,
        }
    }
}

/// Rust element types a section can hold.
pub trait Element: bytemuck::Pod {
    const DTYPE: DType;
}
impl Element for u8 {
    const DTYPE: DType = DType::U8;
}
impl Element for u16 {
    const DTYPE: DType = DType::U16;
}
impl Element for i32 {
    const DTYPE: DType = DType::I32;
}
impl Element for u32 {
    const DTYPE: DType = DType::U32;
}
impl Element for i64 {
    const DTYPE: DType = DType::I64;
}
impl Element for u64 {
    const DTYPE: DType = DType::U64;
}
impl Element for f64 {
    const DTYPE: DType = DType::F64;
}
impl Element for crate::PersonSummary {
    const DTYPE: DType = DType::PersonSummary;
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SectionInfo {
    pub name: String,
    pub offset: u64,
    /// Length in bytes.
    pub len: u64,
    pub dtype: DType,
    pub crc32: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Toc {
    pub format_version: u32,
    pub meta: Meta,
    pub sections: Vec<SectionInfo>,
}

/// Writes sections one after another to `out`, then the table of contents and the footer.
pub struct SectionWriter<W: Write> {
    out: W,
    pos: u64,
    sections: Vec<SectionInfo>,
}

impl<W: Write> SectionWriter<W> {
    pub fn new(mut out: W) -> io::Result<Self> {
        let mut header = [0u8; HEADER_LEN];
        header[..8].copy_from_slice(MAGIC);
        header[8..12].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.write_all(&header)?;
        Ok(SectionWriter {
            out,
            pos: HEADER_LEN as u64,
            sections: Vec::new(),
        })
    }

    fn pad_to_align(&mut self) -> io::Result<()> {
        let pad = (ALIGN - (self.pos as usize % ALIGN)) % ALIGN;
        self.out.write_all(&[0u8; ALIGN][..pad])?;
        self.pos += pad as u64;
        Ok(())
    }

    pub fn section<T: Element>(&mut self, name: impl Into<String>, data: &[T]) -> io::Result<()> {
        self.pad_to_align()?;
        let bytes: &[u8] = bytemuck::cast_slice(data);
        self.out.write_all(bytes)?;
        let info = SectionInfo {
            name: name.into(),
            offset: self.pos,
            len: bytes.len() as u64,
            dtype: T::DTYPE,
            crc32: crc32fast::hash(bytes),
        };
        self.pos += bytes.len() as u64;
        self.sections.push(info);
        Ok(())
    }

    /// Writes one section from pieces given in order (a column streamed from a spill file): the
    /// same bytes and checksum as [`SectionWriter::section`] given the pieces joined.
    pub fn section_from<T: Element, E>(
        &mut self,
        name: impl Into<String>,
        mut fill: impl FnMut(&mut dyn FnMut(&[T]) -> io::Result<()>) -> Result<(), E>,
    ) -> Result<(), E>
    where
        E: From<io::Error>,
    {
        self.pad_to_align()?;
        let start = self.pos;
        let mut crc = crc32fast::Hasher::new();
        let (out, pos) = (&mut self.out, &mut self.pos);
        fill(&mut |piece: &[T]| {
            let bytes: &[u8] = bytemuck::cast_slice(piece);
            crc.update(bytes);
            *pos += bytes.len() as u64;
            out.write_all(bytes)
        })?;
        self.sections.push(SectionInfo {
            name: name.into(),
            offset: start,
            len: self.pos - start,
            dtype: T::DTYPE,
            crc32: crc.finalize(),
        });
        Ok(())
    }

    /// Writes the table of contents and footer; returns the underlying writer.
    pub fn finish(mut self, meta: Meta) -> io::Result<W> {
        self.pad_to_align()?;
        let toc = Toc {
            format_version: FORMAT_VERSION,
            meta,
            sections: self.sections,
        };
        let toc_bytes = serde_json::to_vec(&toc).map_err(io::Error::other)?;
        self.out.write_all(&toc_bytes)?;
        let mut footer = [0u8; FOOTER_LEN];
        footer[0..8].copy_from_slice(&self.pos.to_le_bytes());
        footer[8..16].copy_from_slice(&(toc_bytes.len() as u64).to_le_bytes());
        footer[16..20].copy_from_slice(&crc32fast::hash(&toc_bytes).to_le_bytes());
        footer[20..24].copy_from_slice(&FORMAT_VERSION.to_le_bytes());
        footer[24..32].copy_from_slice(FOOTER_MAGIC);
        self.out.write_all(&footer)?;
        self.out.flush()?;
        Ok(self.out)
    }
}

//! Buffered output files.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::{io, Result};

const FLUSH_AT: usize = 1 << 20;

/// A CSV file being written through an in-memory buffer flushed every megabyte.
pub(crate) struct OutFile {
    path: PathBuf,
    file: File,
    pub buf: Vec<u8>,
    pub bytes: u64,
}

impl OutFile {
    pub fn create(path: &Path) -> Result<OutFile> {
        let file = File::create(path).map_err(io(path))?;
        Ok(OutFile {
            path: path.to_path_buf(),
            file,
            buf: Vec::with_capacity(FLUSH_AT + (64 << 10)),
            bytes: 0,
        })
    }

    /// Writes the buffer out once it holds a megabyte.
    #[inline]
    pub fn maybe_flush(&mut self) -> Result<()> {
        if self.buf.len() >= FLUSH_AT {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<()> {
        self.file.write_all(&self.buf).map_err(io(&self.path))?;
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Flushes and closes; returns the bytes written.
    pub fn finish(mut self) -> Result<u64> {
        self.flush()?;
        self.file.flush().map_err(io(&self.path))?;
        Ok(self.bytes)
    }
}

/// Copies a file byte for byte; returns its size.
pub(crate) fn copy(from: &Path, to: &Path) -> Result<u64> {
    std::fs::copy(from, to).map_err(io(to))
}

/// Writes `ROWCOUNTS.tsv` (`table<TAB>rows`, sorted by table) like the project's test data folders.
pub(crate) fn write_rowcounts(dir: &Path, counts: &[(String, u64)]) -> Result<()> {
    let mut counts = counts.to_vec();
    counts.sort();
    let mut text = String::new();
    for (name, rows) in counts {
        text.push_str(&format!("{name}\t{rows}\n"));
    }
    let path = dir.join("ROWCOUNTS.tsv");
    std::fs::write(&path, text).map_err(io(&path))
}

//! Temporary files for building a store in bounded memory: sorted runs merged k ways, and columns
//! written as they are built and copied into the store afterwards.
//!
//! Every file lives beside the store as `.<store>.qstore.spill<k>-<pid>` (the name `qiao ingest`'s
//! signal handler and the next write's stale-file sweep both recognise) and is removed when its
//! owner is dropped, on success and on error alike.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fs::{self, File};
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::marker::PhantomData;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rayon::prelude::*;

/// Where temporary files go; removes every file it made when the last clone is dropped.
#[derive(Clone)]
pub struct SpillDir {
    inner: Arc<SpillInner>,
}

struct SpillInner {
    dir: PathBuf,
    prefix: String,
    next: AtomicUsize,
    made: Mutex<Vec<PathBuf>>,
}

impl SpillDir {
    /// Temporary files beside the store `path`.
    pub fn beside(path: &Path) -> SpillDir {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "store".into());
        SpillDir {
            inner: Arc::new(SpillInner {
                dir,
                prefix: format!(".{name}.qstore.spill"),
                next: AtomicUsize::new(0),
                made: Mutex::new(Vec::new()),
            }),
        }
    }

    /// The name prefix of this store's temporary files (a file is `<prefix><k>-<pid>`).
    pub fn prefix(&self) -> &str {
        &self.inner.prefix
    }

    fn create(&self) -> io::Result<(PathBuf, File)> {
        let k = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let path = self
            .inner
            .dir
            .join(format!("{}{k}-{}", self.inner.prefix, std::process::id()));
        let file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        self.inner
            .made
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(path.clone());
        Ok((path, file))
    }

    /// How many temporary files were made.
    pub fn created(&self) -> usize {
        self.inner.next.load(Ordering::Relaxed)
    }

    /// The temporary files that exist now (for tests).
    pub fn files(&self) -> Vec<PathBuf> {
        let made = self.inner.made.lock().unwrap_or_else(|e| e.into_inner());
        made.iter().filter(|p| p.exists()).cloned().collect()
    }
}

impl Drop for SpillInner {
    fn drop(&mut self) {
        for p in self
            .made
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            let _ = fs::remove_file(p);
        }
    }
}

/// A temporary file written once, then read back (possibly several times).
pub(crate) struct SpillFile {
    path: PathBuf,
    out: Option<BufWriter<File>>,
    len: u64,
    _dir: SpillDir,
}

impl SpillFile {
    pub fn new(dir: &SpillDir) -> io::Result<SpillFile> {
        let (path, file) = dir.create()?;
        Ok(SpillFile {
            path,
            out: Some(BufWriter::with_capacity(1 << 16, file)),
            len: 0,
            _dir: dir.clone(),
        })
    }
    pub fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.len += bytes.len() as u64;
        match &mut self.out {
            Some(out) => out.write_all(bytes),
            None => Err(io::Error::other("spill file written after it was read")),
        }
    }
    /// Ends writing and opens the file for reading from its start.
    pub fn reader(&mut self) -> io::Result<BufReader<File>> {
        if let Some(out) = self.out.take() {
            out.into_inner().map_err(|e| e.into_error())?;
        }
        Ok(BufReader::with_capacity(1 << 16, File::open(&self.path)?))
    }
}

impl Drop for SpillFile {
    fn drop(&mut self) {
        self.out = None;
        let _ = fs::remove_file(&self.path);
    }
}

/// Values of one type written to a temporary file in order, then read back piece by piece.
pub(crate) struct SpillVec<T: bytemuck::Pod> {
    file: SpillFile,
    buf: Vec<T>,
    len: usize,
}

const PIECE: usize = 1 << 14;

impl<T: bytemuck::Pod> SpillVec<T> {
    pub fn new(dir: &SpillDir) -> io::Result<Self> {
        Ok(SpillVec {
            file: SpillFile::new(dir)?,
            buf: Vec::with_capacity(PIECE),
            len: 0,
        })
    }
    #[inline]
    pub fn push(&mut self, x: T) -> io::Result<()> {
        self.buf.push(x);
        self.len += 1;
        if self.buf.len() == PIECE {
            self.flush()?;
        }
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        self.file.write(bytemuck::cast_slice(&self.buf))?;
        self.buf.clear();
        Ok(())
    }
    pub fn extend(&mut self, xs: &[T]) -> io::Result<()> {
        for &x in xs {
            self.push(x)?;
        }
        Ok(())
    }
    pub fn len(&self) -> usize {
        self.len
    }
    /// Ends writing; calls `f` with the values in order, a piece at a time.
    pub fn pieces(&mut self, f: &mut dyn FnMut(&[T]) -> io::Result<()>) -> io::Result<()> {
        if !self.buf.is_empty() {
            self.flush()?;
        }
        let mut r = self.file.reader()?;
        let mut piece: Vec<T> = Vec::new();
        piece.resize(PIECE, T::zeroed());
        let mut left = self.len;
        while left > 0 {
            let n = left.min(PIECE);
            r.read_exact(bytemuck::cast_slice_mut(&mut piece[..n]))?;
            f(&piece[..n])?;
            left -= n;
        }
        Ok(())
    }
}

/// An external sort of fixed-size records: kept in memory up to a budget, sorted and written as
/// runs beyond it, merged k ways when read.
pub struct Sorter<T: bytemuck::Pod + Ord + Send + Sync> {
    dir: SpillDir,
    buf: Vec<T>,
    cap: usize,
    runs: Vec<SpillVec<T>>,
}

impl<T: bytemuck::Pod + Ord + Send + Sync> Sorter<T> {
    /// A sorter holding at most `budget` bytes of records in memory.
    pub fn new(dir: &SpillDir, budget: usize) -> Self {
        Sorter {
            dir: dir.clone(),
            buf: Vec::new(),
            cap: (budget / std::mem::size_of::<T>()).max(1024),
            runs: Vec::new(),
        }
    }
    pub fn push(&mut self, x: T) -> io::Result<()> {
        self.buf.push(x);
        if self.buf.len() >= self.cap {
            self.spill()?;
        }
        Ok(())
    }
    fn spill(&mut self) -> io::Result<()> {
        self.buf.par_sort_unstable();
        let mut run = SpillVec::new(&self.dir)?;
        for &x in &self.buf {
            run.push(x)?;
        }
        self.buf = Vec::new();
        self.runs.push(run);
        return_free_memory();
        Ok(())
    }
    /// Calls `f` with every record in ascending order.
    pub fn sorted(mut self, mut f: impl FnMut(T) -> io::Result<()>) -> io::Result<()> {
        if self.runs.is_empty() {
            self.buf.par_sort_unstable();
            return self.buf.iter().try_for_each(|&x| f(x));
        }
        if !self.buf.is_empty() {
            self.spill()?;
        }
        let mut readers = Vec::with_capacity(self.runs.len());
        for run in &mut self.runs {
            if !run.buf.is_empty() {
                run.flush()?;
            }
            readers.push(RunReader::<T> {
                r: run.file.reader()?,
                left: run.len,
                _t: PhantomData,
            });
        }
        let mut heap = BinaryHeap::new();
        for (i, r) in readers.iter_mut().enumerate() {
            if let Some(x) = r.next()? {
                heap.push(Reverse((x, i)));
            }
        }
        while let Some(Reverse((x, i))) = heap.pop() {
            f(x)?;
            if let Some(y) = readers[i].next()? {
                heap.push(Reverse((y, i)));
            }
        }
        Ok(())
    }
}

struct RunReader<T> {
    r: BufReader<File>,
    left: usize,
    _t: PhantomData<T>,
}

impl<T: bytemuck::Pod> RunReader<T> {
    fn next(&mut self) -> io::Result<Option<T>> {
        if self.left == 0 {
            return Ok(None);
        }
        self.left -= 1;
        let mut x = T::zeroed();
        self.r.read_exact(bytemuck::bytes_of_mut(&mut x))?;
        Ok(Some(x))
    }
}

/// Gives the memory freed so far back to the operating system (glibc keeps freed blocks below its
/// mmap threshold in its arenas: resident, though unused, after a run was written).
pub(crate) fn return_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns unused heap pages to the kernel; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

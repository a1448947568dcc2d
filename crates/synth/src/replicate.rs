//! `K` exact copies of a source CDM in one folder, ids offset per copy.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{io, Error, Result};
use crate::out::{copy, write_rowcounts, OutFile};
use crate::source::{load, People, SourceFile};
use crate::template::{Mode, Template};
use crate::{id_offset, report, run_tasks, same_dir, Summary, TableSummary, Written};

/// Options of [`replicate_with`].
#[derive(Debug, Clone)]
pub struct ReplicateOptions {
    /// Source CDM CSV folder.
    pub from: PathBuf,
    /// Number of copies (at least 1).
    pub copies: u32,
    /// Output folder (created if missing).
    pub out: PathBuf,
    /// Print a line per table written to stderr.
    pub progress: bool,
}

/// Writes `k` copies of the CDM in `from` into `out` (see the crate docs), silently.
pub fn replicate(from: &Path, k: u32, out: &Path) -> Result<Summary> {
    replicate_with(&ReplicateOptions {
        from: from.to_path_buf(),
        copies: k,
        out: out.to_path_buf(),
        progress: false,
    })
}

enum Task<'a> {
    Linked(&'a Template, u64),
    Copy(&'a SourceFile, u64),
}

/// Writes `opts.copies` copies of the CDM in `opts.from` into `opts.out` (see the crate docs).
pub fn replicate_with(opts: &ReplicateOptions) -> Result<Summary> {
    let k = opts.copies;
    if k == 0 {
        return Err(Error::Invalid("--replicate needs at least 1 copy".into()));
    }
    let src = load(&opts.from, Mode::Replicate)?;
    let offset = id_offset(
        src.templates.iter().map(|t| t.id_range),
        k as u64 - 1,
        &opts.from.display().to_string(),
    )?;
    std::fs::create_dir_all(&opts.out).map_err(io(&opts.out))?;
    if same_dir(&opts.from, &opts.out) {
        return Err(Error::Invalid(format!(
            "{}: the output folder is the source folder",
            opts.out.display()
        )));
    }
    let people = People::new(src.table("person"));
    let mut tasks: Vec<Task> = src
        .templates
        .iter()
        .map(|t| {
            let orphans = match t.person_hole {
                Some(_) if t.name != "person" => {
                    (0..t.rows).filter(|&r| people.of(t, r).is_none()).count() as u64
                }
                _ => 0,
            };
            Task::Linked(t, orphans)
        })
        .chain(src.copied.iter().map(|(f, rows)| Task::Copy(f, *rows)))
        .collect();
    // Largest first, so the big tables do not end up last on one core.
    tasks.sort_by_key(|t| {
        std::cmp::Reverse(match t {
            Task::Linked(t, _) => t.literal_bytes() as u64 * k as u64,
            Task::Copy(f, _) => std::fs::metadata(&f.path).map_or(0, |m| m.len()),
        })
    });
    let mut tables = run_tasks(&tasks, |task| {
        let started = Instant::now();
        let summary = match *task {
            Task::Linked(t, orphan_rows) => {
                let path = opts.out.join(format!("{}.csv", t.name));
                let mut f = OutFile::create(&path)?;
                f.buf.extend_from_slice(&t.header);
                for copy in 0..k as i64 {
                    let off = copy * offset;
                    for r in 0..t.rows {
                        t.write_row(r, off, 0, &mut f.buf);
                        f.maybe_flush()?;
                    }
                }
                TableSummary {
                    name: t.name.clone(),
                    rows: t.rows as u64 * k as u64,
                    bytes: f.finish()?,
                    path,
                    written: Written::Replicated,
                    orphan_rows,
                }
            }
            Task::Copy(f, rows) => {
                let path = opts.out.join(format!("{}.csv", f.name));
                TableSummary {
                    name: f.name.clone(),
                    rows,
                    bytes: copy(&f.path, &path)?,
                    path,
                    written: Written::Copied,
                    orphan_rows: 0,
                }
            }
        };
        report(opts.progress, &summary, started.elapsed().as_secs_f64());
        Ok(summary)
    })?;
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let counts: Vec<(String, u64)> = tables.iter().map(|t| (t.name.clone(), t.rows)).collect();
    write_rowcounts(&opts.out, &counts)?;
    Ok(Summary {
        out: opts.out.clone(),
        copies: k,
        id_offset: offset,
        persons: tables
            .iter()
            .find(|t| t.name == "person")
            .map_or(0, |t| t.rows),
        rows: tables.iter().map(|t| t.rows).sum(),
        clinical_rows: tables
            .iter()
            .filter(|t| t.written != Written::Copied)
            .map(|t| t.rows)
            .sum(),
        bytes: tables.iter().map(|t| t.bytes).sum(),
        tables,
        skipped: src.skipped,
    })
}

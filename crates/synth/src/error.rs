//! Errors of `qiao-synth`: every one names the file (and, for bad data, the line) it is about.

use std::path::{Path, PathBuf};

/// What went wrong, and where.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading or writing a file or folder failed.
    #[error("{}: {err}", .path.display())]
    Io { path: PathBuf, err: std::io::Error },
    /// A value in a source CSV file cannot be used (e.g. an id that is not an integer).
    #[error("{}:{line}: {msg}", .path.display())]
    Data {
        path: PathBuf,
        line: u64,
        msg: String,
    },
    /// A source CSV file is malformed (the message includes the line).
    #[error("{}: {msg}", .path.display())]
    Csv { path: PathBuf, msg: String },
    /// The request cannot be carried out (bad options, missing tables, id overflow).
    #[error("{0}")]
    Invalid(String),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

pub(crate) fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Error + '_ {
    move |err| Error::Io {
        path: path.to_path_buf(),
        err,
    }
}

pub(crate) fn csv_err(path: &Path, e: csv::Error) -> Error {
    if !e.is_io_error() {
        return Error::Csv {
            path: path.to_path_buf(),
            msg: e.to_string(),
        };
    }
    match e.into_kind() {
        csv::ErrorKind::Io(err) => Error::Io {
            path: path.to_path_buf(),
            err,
        },
        kind => Error::Csv {
            path: path.to_path_buf(),
            msg: format!("{kind:?}"),
        },
    }
}

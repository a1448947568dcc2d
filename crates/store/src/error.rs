use std::path::PathBuf;

/// Why a store could not be opened, read or written.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{store}: store format version {found} is not supported (this qiao reads version {supported}); re-ingest the CDM with this version (`qiao ingest`)")]
    Version {
        store: String,
        found: u32,
        supported: u32,
    },
    #[error("{store}: corrupt store: {what}")]
    Corrupt { store: String, what: String },
    #[error("store has no section {name}")]
    Missing { name: String },
}

//! One module per subcommand: its arguments and its `run`.

pub mod analyze;
pub mod cohort;
pub mod demo;
pub mod hub;
pub mod ingest;
pub mod query;

pub mod site;
pub mod stats;
pub mod store;
pub mod synth;

/// Keeps `value` (an open store: its memory map and directory) until the process exits instead of
/// dropping it when the command is done. The kernel tears the whole address space down at exit in
/// one pass; unmapping the store first (its page tables, a TLB flush on every thread of the pool)
/// and freeing its directory would only lengthen a command that answers in milliseconds.
pub fn keep_until_exit<T>(value: T) {
    std::mem::forget(value);
}

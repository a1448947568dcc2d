//! Stopping a run from another thread: a [`Cancel`] token is handed to [`super::Prepared`]
//! ([`super::Prepared::with_cancel`]) and checked once per span of persons (fused pipeline)
//! or per person (per-person evaluator), one relaxed atomic load each. A cancelled run ends
//! with [`super::CohortError::Cancelled`] and gives no rows or statistics.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// A cancellation token; clones share one flag.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<AtomicBool>);

impl Cancel {
    /// A token not cancelled yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Asks every run holding this token (or a clone) to stop.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }

    /// Whether [`Cancel::cancel`] was called.
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// `Some` token's state, `false` without one.
#[inline]
pub(crate) fn cancelled(c: Option<&Cancel>) -> bool {
    c.is_some_and(Cancel::is_cancelled)
}

//! The Qiao hub (work in progress).

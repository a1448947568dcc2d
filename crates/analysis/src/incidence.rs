//! (issue #15: to be built)

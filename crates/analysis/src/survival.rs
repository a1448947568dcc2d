//! (issue #16: to be built)

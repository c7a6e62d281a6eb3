//! Errors of the collect crate (placeholder).

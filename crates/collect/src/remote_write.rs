//! Remote write (placeholder).

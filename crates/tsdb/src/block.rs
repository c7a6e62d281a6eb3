//! On-disk blocks (placeholder until the block module lands).

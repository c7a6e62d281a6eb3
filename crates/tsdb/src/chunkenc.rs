//! Head chunk encoding (placeholder until the chunk module lands).

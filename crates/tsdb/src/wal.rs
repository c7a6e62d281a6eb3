//! Write-ahead log (placeholder until the WAL module lands).

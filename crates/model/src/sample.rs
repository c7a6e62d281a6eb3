//! Samples and the staleness marker.

/// Bit pattern of the staleness marker: a signalling NaN distinct from the NaN arithmetic produces,
/// identical to Prometheus's so markers survive remote write in both directions.
pub const STALE_NAN_BITS: u64 = 0x7ff0_0000_0000_0002;
pub const STALE_NAN: f64 = f64::from_bits(STALE_NAN_BITS);

pub fn is_stale_nan(v: f64) -> bool {
    v.to_bits() == STALE_NAN_BITS
}

/// One float sample: timestamp in milliseconds since the epoch and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sample {
    pub t: i64,
    pub v: f64,
}

impl Sample {
    pub fn new(t: i64, v: f64) -> Self {
        Self { t, v }
    }
    /// Bitwise equality, so NaN and stale markers compare equal to themselves.
    pub fn bit_eq(&self, other: &Sample) -> bool {
        self.t == other.t && self.v.to_bits() == other.v.to_bits()
    }
}

//! Core data types shared by every stage of the flow: label sets, matchers, samples, timestamps,
//! fingerprints and the `Clock` that time-driven components take.

pub mod alert;
pub mod build;
pub mod clock;
pub mod duration;
pub mod error;
pub mod labels;
pub mod matcher;
pub mod sample;
pub mod time;

pub use alert::Alert;
pub use clock::{Clock, ManualClock, SystemClock};
pub use error::{Error, ErrorKind, Result};
pub use labels::{hash_label_pairs, Label, Labels, LabelsBuilder, METRIC_NAME};
pub use matcher::{MatchOp, Matcher};
pub use sample::{is_stale_nan, Sample, STALE_NAN, STALE_NAN_BITS};

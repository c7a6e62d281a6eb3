//! Google credentials (metadata server, service-account key, token cache, ID tokens) and the few
//! Google REST calls Tocsin makes (Compute Engine instances, Pub/Sub publish). Base URLs are
//! settings, so tests talk to fakes on 127.0.0.1.

use serde::Deserialize;

/// Where Google credentials come from and where Google's APIs are; shared by the
/// `gce_instance` action and the Pub/Sub receiver.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GoogleConfig {
    /// A service-account JSON key; without one, the metadata server is asked.
    #[serde(default)]
    pub service_account_key_file: Option<String>,
    /// Base URL of the metadata server; default `http://metadata.google.internal`.
    #[serde(default)]
    pub metadata_url: Option<String>,
    /// Base URL of Compute Engine; default `https://compute.googleapis.com`.
    #[serde(default)]
    pub compute_url: Option<String>,
    /// Base URL of Pub/Sub; default `https://pubsub.googleapis.com`.
    #[serde(default)]
    pub pubsub_url: Option<String>,
}

//! Pub/Sub `projects.topics.publish`: messages (base64 `data`, string `attributes`) published
//! to a topic named `projects/P/topics/T`; the answer's `messageIds` are returned.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

use crate::error::{classify, Error, Result};
use crate::{join, Google};

/// One message to publish.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PubsubMessage {
    pub data: Vec<u8>,
    pub attributes: BTreeMap<String, String>,
}

/// Splits `projects/P/topics/T` into (P, T); the error says what is wrong.
pub fn parse_topic(s: &str) -> Result<(String, String)> {
    let parts: Vec<&str> = s.split('/').collect();
    match parts.as_slice() {
        ["projects", p, "topics", t] if !p.is_empty() && !t.is_empty() => {
            Ok((p.to_string(), t.to_string()))
        }
        _ => Err(Error::Config(format!(
            "{s:?} is not a topic name of the form projects/PROJECT/topics/TOPIC"
        ))),
    }
}

#[derive(Serialize)]
struct WireMessage<'a> {
    data: String,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    attributes: &'a BTreeMap<String, String>,
}

#[derive(Serialize)]
struct PublishRequest<'a> {
    messages: Vec<WireMessage<'a>>,
}

#[derive(Deserialize)]
struct PublishAnswer {
    #[serde(rename = "messageIds", default)]
    message_ids: Vec<String>,
}

impl Google {
    /// The URL `topic` is published at.
    pub fn publish_url(&self, topic: &str) -> Result<reqwest::Url> {
        let (p, t) = parse_topic(topic)?;
        join(
            &self.pubsub_url,
            &["v1", "projects", &p, "topics", &format!("{t}:publish")],
        )
    }

    /// Publishes `messages` to `topic` (`projects/P/topics/T`) and returns their ids.
    pub async fn publish(
        &self,
        topic: &str,
        messages: &[PubsubMessage],
        timeout: Duration,
    ) -> Result<Vec<String>> {
        let url = self.publish_url(topic)?;
        let what = format!("publish to {topic}");
        let req = PublishRequest {
            messages: messages
                .iter()
                .map(|m| WireMessage {
                    data: base64::engine::general_purpose::STANDARD.encode(&m.data),
                    attributes: &m.attributes,
                })
                .collect(),
        };
        let body = serde_json::to_vec(&req)
            .map_err(|e| Error::BadResponse(format!("{what}: encoding: {e}")))?;
        let a = self
            .call(reqwest::Method::POST, url, Some(body), timeout, &what)
            .await?;
        if !a.ok() {
            return Err(classify(&what, a.status, &a.headers, &a.body));
        }
        let ans: PublishAnswer = serde_json::from_slice(&a.body)
            .map_err(|e| Error::BadResponse(format!("{what}: answer is not JSON: {e}")))?;
        if ans.message_ids.len() != messages.len() {
            return Err(Error::BadResponse(format!(
                "{what}: {} messageIds for {} messages",
                ans.message_ids.len(),
                messages.len()
            )));
        }
        Ok(ans.message_ids)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn topics() {
        assert_eq!(
            parse_topic("projects/p/topics/t").unwrap(),
            ("p".to_string(), "t".to_string())
        );
        for bad in [
            "p/t",
            "projects/p/topics/",
            "projects/p/subscriptions/s",
            "",
        ] {
            assert!(parse_topic(bad).is_err(), "{bad}");
        }
    }
}

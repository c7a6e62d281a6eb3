//! The serving side of the read protocol (`POST /api/v1/read`): a client's `ReadRequest` decoded,
//! and a `SAMPLES` answer (one snappy-compressed `ReadResponse`) encoded, so that another
//! Tocsin or a Prometheus can read this server as a `remote_read:` source: replicas fill their
//! gaps from each other this way. The answer type is always `SAMPLES`, which every client accepts.

use prost::Message;
use tocsin_model::{MatchOp, Matcher};

use super::proto;

/// Largest request body accepted once decompressed (a request is a few matchers per query).
const MAX_REQUEST_BYTES: usize = 16 << 20;

/// A snappy-compressed `ReadRequest`, as clients send it.
pub fn decode_request(body: &[u8]) -> Result<proto::ReadRequest, String> {
    let raw = super::unsnappy(body, "request", MAX_REQUEST_BYTES)?;
    let r = proto::ReadRequest::decode(raw.as_slice())
        .map_err(|e| format!("not a ReadRequest: {e}"))?;
    if r.queries.is_empty() {
        return Err("the request holds no query".into());
    }
    Ok(r)
}

/// The query's matchers; `i` names the query in errors.
pub fn matchers(i: usize, q: &proto::Query) -> Result<Vec<Matcher>, String> {
    if q.matchers.is_empty() {
        return Err(format!("queries[{i}]: no matchers"));
    }
    q.matchers
        .iter()
        .enumerate()
        .map(|(j, m)| {
            let op = match proto::MatcherType::try_from(m.r#type) {
                Ok(proto::MatcherType::Eq) => MatchOp::Equal,
                Ok(proto::MatcherType::Neq) => MatchOp::NotEqual,
                Ok(proto::MatcherType::Re) => MatchOp::Regex,
                Ok(proto::MatcherType::Nre) => MatchOp::NotRegex,
                Err(_) => {
                    return Err(format!(
                        "queries[{i}].matchers[{j}]: unknown matcher type {}",
                        m.r#type
                    ))
                }
            };
            Matcher::new(op, m.name.clone(), m.value.clone())
                .map_err(|e| format!("queries[{i}].matchers[{j}]: {e}"))
        })
        .collect()
}

/// The `SAMPLES` answer: one result per query, in order.
pub fn encode_samples(results: Vec<proto::QueryResult>) -> Vec<u8> {
    let raw = proto::ReadResponse { results }.encode_to_vec();
    // Compressing a byte slice in memory cannot fail but for a length past snappy's limit
    // (4 GiB), far above the sample limit's worth of bytes.
    snap::raw::Encoder::new()
        .compress_vec(&raw)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_are_named() {
        let req = proto::ReadRequest {
            queries: vec![proto::Query {
                start_timestamp_ms: 1,
                end_timestamp_ms: 2,
                matchers: vec![proto::LabelMatcher {
                    r#type: proto::MatcherType::Re as i32,
                    name: "__name__".into(),
                    value: "up|x".into(),
                }],
                hints: None,
            }],
            accepted_response_types: vec![proto::ResponseType::Samples as i32],
        };
        let body = snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap_or_default();
        let back = decode_request(&body).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, req);
        let ms = matchers(0, &back.queries[0]).unwrap_or_else(|e| panic!("{e}"));
        assert!(ms[0].matches("up"));
        assert!(decode_request(b"not snappy").is_err());
        let mut bad = req.queries[0].clone();
        bad.matchers[0].value = "(".into();
        assert!(matchers(3, &bad)
            .err()
            .is_some_and(|e| e.starts_with("queries[3].matchers[0]")));
        let answer = encode_samples(vec![proto::QueryResult::default()]);
        let raw = snap::raw::Decoder::new()
            .decompress_vec(&answer)
            .unwrap_or_default();
        assert_eq!(
            proto::ReadResponse::decode(raw.as_slice())
                .map(|r| r.results.len())
                .ok(),
            Some(1)
        );
    }
}

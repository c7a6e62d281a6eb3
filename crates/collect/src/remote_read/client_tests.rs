//! `Remote` against a canned HTTP server on 127.0.0.1: the request it sends, both answer types,
//! and the errors that name the remote.

use std::sync::Arc;

use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::frames::encode_frame;
use super::proto::{self, ChunkEncoding};
use super::xor::encode_xor;
use super::{ReadError, ReadMetrics, Remote, RemoteReadConfig, STREAMED_CONTENT_TYPE};

/// Serves one answer per connection; returns the base URL and a receiver of the raw requests.
async fn serve(
    answers: Vec<(u16, &'static str, Vec<u8>)>,
) -> (String, tokio::sync::mpsc::UnboundedReceiver<Vec<u8>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        for (code, ct, body) in answers {
            let (mut s, _) = l.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then as much body as Content-Length says.
            loop {
                let n = s.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_lowercase();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length: "))
                        .and_then(|v| v.trim().parse::<usize>().ok())
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len {
                        break;
                    }
                }
                if n == 0 {
                    break;
                }
            }
            tx.send(req).unwrap();
            let head = format!(
                "HTTP/1.1 {code} X\r\ncontent-type: {ct}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            s.write_all(head.as_bytes()).await.unwrap();
            s.write_all(&body).await.unwrap();
            s.shutdown().await.unwrap();
        }
    });
    (format!("http://{addr}/api/v1/read"), rx)
}

fn remote(url: &str) -> Arc<Remote> {
    let cfg: RemoteReadConfig = serde_norway::from_str(&format!(
        "url: {url}\nname: peer\nremote_timeout: 5s\nheaders: {{X-Scope-OrgID: t1}}\n"
    ))
    .unwrap();
    Arc::new(
        Remote::new(
            &cfg,
            std::path::Path::new("."),
            &ReadMetrics::default(),
            tokio::runtime::Handle::current(),
        )
        .unwrap(),
    )
}

fn query() -> proto::Query {
    proto::Query {
        start_timestamp_ms: 0,
        end_timestamp_ms: 100,
        matchers: vec![proto::LabelMatcher {
            r#type: proto::MatcherType::Eq as i32,
            name: "__name__".into(),
            value: "up".into(),
        }],
        hints: None,
    }
}

fn label(n: &str, v: &str) -> proto::Label {
    proto::Label {
        name: n.into(),
        value: v.into(),
    }
}

fn chunked() -> Vec<u8> {
    encode_frame(&proto::ChunkedReadResponse {
        chunked_series: vec![proto::ChunkedSeries {
            labels: vec![label("__name__", "up")],
            chunks: vec![proto::Chunk {
                min_time_ms: 1,
                max_time_ms: 2,
                r#type: ChunkEncoding::Xor as i32,
                data: encode_xor(&[(1, 1.0), (2, 0.0)]),
            }],
        }],
        query_index: 0,
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_snappy_request_asking_chunks_first_and_reads_both_answers() {
    let samples = proto::ReadResponse {
        results: vec![proto::QueryResult {
            timeseries: vec![proto::TimeSeries {
                labels: vec![label("__name__", "up")],
                samples: vec![proto::Sample {
                    value: 3.0,
                    timestamp: 5,
                }],
                histograms: Vec::new(),
            }],
        }],
    };
    let samples = snap::raw::Encoder::new()
        .compress_vec(&samples.encode_to_vec())
        .unwrap();
    let (url, mut reqs) = serve(vec![
        (200, STREAMED_CONTENT_TYPE, chunked()),
        (200, "application/x-protobuf", samples),
    ])
    .await;
    let r = remote(&url);
    let s = r.read(query()).await.unwrap();
    assert_eq!(s[0].samples.len(), 2);
    let s = r.read(query()).await.unwrap();
    assert_eq!((s[0].samples[0].t, s[0].samples[0].v), (5, 3.0));

    let req = reqs.recv().await.unwrap();
    let end = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&req[..end]).to_lowercase();
    for h in [
        "post /api/v1/read http/1.1",
        "content-encoding: snappy",
        "content-type: application/x-protobuf",
        "x-prometheus-remote-read-version: 0.1.0",
        "x-scope-orgid: t1",
    ] {
        assert!(head.contains(h), "{h} missing in {head}");
    }
    let body = snap::raw::Decoder::new()
        .decompress_vec(&req[end + 4..])
        .unwrap();
    let rr = proto::ReadRequest::decode(body.as_slice()).unwrap();
    assert_eq!(
        rr.accepted_response_types,
        vec![
            proto::ResponseType::StreamedXorChunks as i32,
            proto::ResponseType::Samples as i32
        ]
    );
    assert_eq!(rr.queries, vec![query()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_answers_are_errors_naming_the_remote() {
    let mut corrupt = chunked();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    let (url, _reqs) = serve(vec![
        (503, "text/plain", b"overloaded\n".to_vec()),
        (200, STREAMED_CONTENT_TYPE, corrupt),
        (200, STREAMED_CONTENT_TYPE, chunked()[..5].to_vec()),
    ])
    .await;
    let r = remote(&url);
    let e = r.read(query()).await.unwrap_err();
    assert!(matches!(e, ReadError::Status { code: 503, .. }), "{e}");
    assert!(
        e.to_string()
            .starts_with("remote_read \"peer\" (http://127.0.0.1:")
            && e.to_string().ends_with("answered HTTP 503: overloaded"),
        "{e}"
    );
    let e = r.read(query()).await.unwrap_err().to_string();
    assert!(
        e.contains("bad answer: frame 0 at byte 0: CRC32 mismatch"),
        "{e}"
    );
    let e = r.read(query()).await.unwrap_err().to_string();
    assert!(
        e.contains("bad answer: frame 0 at byte 0: truncated"),
        "{e}"
    );
    // Nothing listens any more: the remote is unavailable.
    let e = r.read(query()).await.unwrap_err();
    assert!(matches!(e, ReadError::Unavailable { .. }), "{e}");
}

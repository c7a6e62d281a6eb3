//! The framing of streamed remote-read answers
//! (`application/x-streamed-protobuf; proto=prometheus.ChunkedReadResponse`): each frame is a
//! uvarint length, the CRC32 (Castagnoli) of the message as 4 big-endian bytes, then the
//! `ChunkedReadResponse` message itself. Decoding turns the frames' XOR chunks into samples.

use prost::Message;

use super::proto::{ChunkEncoding, ChunkedReadResponse};
use super::xor::decode_xor;
use super::RawSeries;

/// Largest frame accepted; Prometheus cuts frames at 1 MiB of chunks by default and refuses more
/// than 50 MiB itself (`--storage.remote.read-max-bytes-in-frame`).
pub const MAX_FRAME_BYTES: u64 = 64 << 20;

/// Splits `body` into frames and decodes each, checking lengths and checksums. A damaged stream
/// is an error naming the frame and its byte offset.
pub fn decode_frames(body: &[u8]) -> Result<Vec<ChunkedReadResponse>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let start = at;
        let mut len = 0u64;
        let mut shift = 0u32;
        loop {
            let b = *body
                .get(at)
                .ok_or_else(|| format!("frame {} at byte {start}: truncated length", out.len()))?;
            at += 1;
            if shift >= 63 && b > 1 {
                return Err(format!(
                    "frame {} at byte {start}: length overflows",
                    out.len()
                ));
            }
            len |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                break;
            }
            shift += 7;
        }
        if len > MAX_FRAME_BYTES {
            return Err(format!(
                "frame {} at byte {start}: {len} bytes, more than the limit of {MAX_FRAME_BYTES}",
                out.len()
            ));
        }
        let len = len as usize;
        let need = at + 4 + len;
        if need > body.len() {
            return Err(format!(
                "frame {} at byte {start}: truncated ({} of {} bytes present)",
                out.len(),
                body.len() - at,
                4 + len
            ));
        }
        let crc = u32::from_be_bytes([body[at], body[at + 1], body[at + 2], body[at + 3]]);
        let msg = &body[at + 4..need];
        let got = crc32c::crc32c(msg);
        if got != crc {
            return Err(format!(
                "frame {} at byte {start}: CRC32 mismatch (frame says {crc:08x}, data has {got:08x})",
                out.len()
            ));
        }
        let m = ChunkedReadResponse::decode(msg).map_err(|e| {
            format!(
                "frame {} at byte {start}: not a ChunkedReadResponse: {e}",
                out.len()
            )
        })?;
        out.push(m);
        at = need;
    }
    Ok(out)
}

/// The series of decoded frames with their chunks turned into samples. A series split over
/// several frames appears once per frame; the caller merges by labels.
pub fn frames_to_series(frames: Vec<ChunkedReadResponse>) -> Result<Vec<RawSeries>, String> {
    let mut out = Vec::new();
    for f in frames {
        for s in f.chunked_series {
            let mut samples = Vec::new();
            for c in &s.chunks {
                match ChunkEncoding::try_from(c.r#type) {
                    Ok(ChunkEncoding::Xor) => samples.extend(
                        decode_xor(&c.data)
                            .map_err(|e| format!("series {}: {e}", super::describe(&s.labels)))?,
                    ),
                    Ok(ChunkEncoding::Histogram | ChunkEncoding::FloatHistogram) => {
                        return Err(format!(
                            "series {}: native histogram chunks are not supported",
                            super::describe(&s.labels)
                        ))
                    }
                    _ => {
                        return Err(format!(
                            "series {}: chunk encoding {} is unknown",
                            super::describe(&s.labels),
                            c.r#type
                        ))
                    }
                }
            }
            out.push(RawSeries {
                labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
                samples,
            });
        }
    }
    Ok(out)
}

/// One frame as a Prometheus server writes it; for tests and for fakes of a remote.
pub fn encode_frame(m: &ChunkedReadResponse) -> Vec<u8> {
    let msg = m.encode_to_vec();
    let mut out = Vec::with_capacity(msg.len() + 14);
    let mut n = msg.len() as u64;
    while n >= 0x80 {
        out.push(n as u8 | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
    out.extend_from_slice(&crc32c::crc32c(&msg).to_be_bytes());
    out.extend_from_slice(&msg);
    out
}

#[cfg(test)]
mod tests {
    use super::super::proto::{Chunk, ChunkedSeries, Label};
    use super::super::xor::encode_xor;
    use super::*;

    fn frame(name: &str, samples: &[(i64, f64)]) -> ChunkedReadResponse {
        ChunkedReadResponse {
            chunked_series: vec![ChunkedSeries {
                labels: vec![Label {
                    name: "__name__".into(),
                    value: name.into(),
                }],
                chunks: vec![Chunk {
                    min_time_ms: samples[0].0,
                    max_time_ms: samples[samples.len() - 1].0,
                    r#type: ChunkEncoding::Xor as i32,
                    data: encode_xor(samples),
                }],
            }],
            query_index: 0,
        }
    }

    #[test]
    fn good_frames_decode_to_series() {
        let mut body = encode_frame(&frame("a", &[(1, 1.0), (2, 2.0)]));
        body.extend(encode_frame(&frame("b", &[(5, 0.5)])));
        let s = frames_to_series(decode_frames(&body).unwrap()).unwrap();
        assert_eq!(s.len(), 2);
        assert_eq!(s[0].labels, vec![("__name__".into(), "a".into())]);
        assert_eq!(s[0].samples.len(), 2);
        assert_eq!(s[1].samples[0].v, 0.5);
        assert!(decode_frames(&[]).unwrap().is_empty());
    }

    #[test]
    fn crc_mismatch_is_named() {
        let mut body = encode_frame(&frame("a", &[(1, 1.0)]));
        let last = body.len() - 1;
        body[last] ^= 0x01;
        let e = decode_frames(&body).unwrap_err();
        assert!(e.contains("frame 0 at byte 0: CRC32 mismatch"), "{e}");
    }

    #[test]
    fn truncated_frames_are_errors() {
        let one = encode_frame(&frame("a", &[(1, 1.0)]));
        let mut body = one.clone();
        body.extend(&one[..one.len() - 3]);
        let e = decode_frames(&body).unwrap_err();
        assert!(
            e.starts_with(&format!("frame 1 at byte {}: truncated", one.len())),
            "{e}"
        );
        // Cut inside the length varint.
        let e = decode_frames(&[0x80]).unwrap_err();
        assert!(e.contains("truncated length"), "{e}");
        // A length beyond the limit.
        let e = decode_frames(&[0xff, 0xff, 0xff, 0xff, 0x7f]).unwrap_err();
        assert!(e.contains("more than the limit"), "{e}");
    }

    #[test]
    fn histogram_chunks_are_refused() {
        let mut f = frame("h", &[(1, 1.0)]);
        f.chunked_series[0].chunks[0].r#type = ChunkEncoding::Histogram as i32;
        let e = frames_to_series(decode_frames(&encode_frame(&f)).unwrap()).unwrap_err();
        assert!(e.contains("native histogram"), "{e}");
    }
}

//! `POST /api/v1/read`: the read protocol's server side, over this server's own storage only
//! (never its `remote_read:` sources, so two replicas reading each other cannot loop). As
//! Prometheus does, matchers on this server's external labels that its labels satisfy are
//! dropped before selecting, external labels are added to every series that lacks them, and a
//! request whose answer would pass the query sample limit is refused.

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use tocsin_collect::remote_read::{proto, serve};
use tocsin_storage::SelectHints;

use crate::ApiState;

fn bad(status: StatusCode, msg: String) -> Response {
    (status, format!("{msg}\n")).into_response()
}

pub async fn read(State(st): State<ApiState>, body: Bytes) -> Response {
    let req = match serve::decode_request(&body) {
        Ok(r) => r,
        Err(e) => return bad(StatusCode::BAD_REQUEST, format!("remote read: {e}")),
    };
    let mut queries = Vec::with_capacity(req.queries.len());
    for (i, q) in req.queries.iter().enumerate() {
        match serve::matchers(i, q) {
            Ok(ms) => queries.push((q.start_timestamp_ms, q.end_timestamp_ms, ms)),
            Err(e) => return bad(StatusCode::BAD_REQUEST, format!("remote read: {e}")),
        }
    }
    let external = st.status.external_labels();
    let limit = st.query.options().max_samples;
    let queryable = st.local_queryable.clone().unwrap_or(st.queryable.clone());
    let res = tokio::task::spawn_blocking(move || -> Result<Vec<u8>, (StatusCode, String)> {
        let mut results = Vec::with_capacity(queries.len());
        let mut total = 0usize;
        for (start, end, ms) in queries {
            let ms: Vec<_> = ms
                .into_iter()
                .filter(|m| !external.iter().any(|(n, v)| *n == m.name && m.matches(v)))
                .collect();
            let q = queryable
                .querier(start, end)
                .map_err(|e| (crate::error::status_for(e.kind()), e.to_string()))?;
            let hints = SelectHints {
                start,
                end,
                ..SelectHints::default()
            };
            let mut series = Vec::new();
            for s in q
                .select(&hints, &ms)
                .map_err(|e| (crate::error::status_for(e.kind()), e.to_string()))?
            {
                let mut s = s.map_err(|e| (crate::error::status_for(e.kind()), e.to_string()))?;
                let mut samples = Vec::new();
                while let Some(x) = s.samples.next() {
                    if x.t >= start && x.t <= end {
                        samples.push(proto::Sample {
                            value: x.v,
                            timestamp: x.t,
                        });
                    }
                }
                if samples.is_empty() {
                    continue;
                }
                total += samples.len();
                if total > limit {
                    return Err((
                        StatusCode::BAD_REQUEST,
                        format!(
                            "remote read: the answer would hold more than {limit} samples \
                             (query.max_samples); ask for a shorter range or fewer series"
                        ),
                    ));
                }
                let mut labels: Vec<proto::Label> = s
                    .labels
                    .iter()
                    .map(|l| proto::Label {
                        name: l.name.to_string(),
                        value: l.value.to_string(),
                    })
                    .collect();
                for (n, v) in &external {
                    if s.labels.get(n).is_none() {
                        labels.push(proto::Label {
                            name: n.clone(),
                            value: v.clone(),
                        });
                    }
                }
                labels.sort_by(|a, b| a.name.cmp(&b.name));
                series.push(proto::TimeSeries {
                    labels,
                    samples,
                    histograms: Vec::new(),
                });
            }
            results.push(proto::QueryResult { timeseries: series });
        }
        Ok(serve::encode_samples(results))
    })
    .await;
    match res {
        Ok(Ok(body)) => (
            [
                (header::CONTENT_TYPE, "application/x-protobuf"),
                (header::CONTENT_ENCODING, "snappy"),
            ],
            body,
        )
            .into_response(),
        Ok(Err((code, msg))) => bad(code, msg),
        Err(e) => bad(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("remote read failed: {e}"),
        ),
    }
}

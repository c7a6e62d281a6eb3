//! The ledger of acknowledged samples: every sample a write endpoint answered 2xx for, per series
//! (canonical `name{label="value",...}` text), and the final read-back that compares each of
//! them, bit for bit, with what the server returns from a range selector.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use anyhow::{bail, Context};

/// Series text as the read-back builds it from a result's `metric` object: name first, then the
/// labels sorted by name.
pub fn series_key(name: &str, labels: &[(&str, &str)]) -> String {
    let mut l: Vec<(&str, &str)> = labels.to_vec();
    l.sort_unstable();
    let mut s = String::from(name);
    s.push('{');
    for (i, (n, v)) in l.iter().enumerate() {
        if i > 0 {
            s.push(',');
        }
        s.push_str(n);
        s.push_str("=\"");
        s.push_str(v);
        s.push('"');
    }
    s.push('}');
    s
}

#[derive(Default)]
pub struct Ledger {
    acked: Mutex<HashMap<String, BTreeMap<i64, f64>>>,
}

#[derive(Debug, Default, Clone)]
pub struct Verdict {
    pub acked: u64,
    pub recovered: u64,
    /// Acknowledged, absent from the read-back.
    pub lost: u64,
    /// Present at the acknowledged timestamp with another value.
    pub wrong_value: u64,
    /// A few examples of each problem, for the report.
    pub examples: Vec<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Ledger {
    /// Records the samples of one acknowledged request.
    pub fn ack(&self, samples: impl IntoIterator<Item = (String, i64, f64)>) {
        let mut g = lock(&self.acked);
        for (k, t, v) in samples {
            g.entry(k).or_default().insert(t, v);
        }
    }

    pub fn count(&self) -> u64 {
        lock(&self.acked).values().map(|m| m.len() as u64).sum()
    }

    /// Reads every acknowledged sample back with `selector[window]` instant queries covering
    /// `(start_ms, end_ms]` in windows, and compares.
    pub async fn verify(
        &self,
        client: &reqwest::Client,
        base: &str,
        selector: &str,
        start_ms: i64,
        end_ms: i64,
    ) -> anyhow::Result<Verdict> {
        const WINDOW_MS: i64 = 120_000;
        let mut got: HashMap<String, BTreeMap<i64, f64>> = HashMap::new();
        let mut lo = start_ms - 1;
        while lo < end_ms {
            let hi = (lo + WINDOW_MS).min(end_ms);
            let q = format!("{selector}[{}ms]", hi - lo);
            let time = format!("{}.{:03}", hi.div_euclid(1000), hi.rem_euclid(1000));
            let r = client
                .post(format!("{base}/api/v1/query"))
                .form(&[("query", q.as_str()), ("time", time.as_str())])
                .send()
                .await
                .context("read-back query")?;
            let status = r.status();
            let body = r.bytes().await?;
            if !status.is_success() {
                bail!(
                    "read-back query {q} at {time}: HTTP {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            parse_matrix(&body, &mut got).with_context(|| format!("read-back {q} at {time}"))?;
            lo = hi;
        }
        let acked = lock(&self.acked);
        let mut v = Verdict::default();
        for (k, samples) in acked.iter() {
            let back = got.get(k);
            for (t, want) in samples {
                v.acked += 1;
                match back.and_then(|b| b.get(t)) {
                    Some(have) if have.to_bits() == want.to_bits() => v.recovered += 1,
                    Some(have) => {
                        v.wrong_value += 1;
                        if v.examples.len() < 10 {
                            v.examples
                                .push(format!("{k} @{t}: acknowledged {want}, read back {have}"));
                        }
                    }
                    None => {
                        v.lost += 1;
                        if v.examples.len() < 10 {
                            v.examples.push(format!("{k} @{t} = {want}: missing"));
                        }
                    }
                }
            }
        }
        Ok(v)
    }
}

/// Adds a `/api/v1/query` matrix result to `out`, keyed like [`series_key`].
fn parse_matrix(body: &[u8], out: &mut HashMap<String, BTreeMap<i64, f64>>) -> anyhow::Result<()> {
    let v: serde_json::Value = serde_json::from_slice(body).context("response is not JSON")?;
    if v["status"] != "success" || v["data"]["resultType"] != "matrix" {
        bail!("unexpected response: {}", truncate(&v.to_string(), 300));
    }
    let Some(series) = v["data"]["result"].as_array() else {
        bail!("no result array");
    };
    for s in series {
        let Some(m) = s["metric"].as_object() else {
            bail!("series without metric");
        };
        let name = m.get("__name__").and_then(|n| n.as_str()).unwrap_or("");
        let labels: Vec<(&str, &str)> = m
            .iter()
            .filter(|(n, _)| n.as_str() != "__name__")
            .map(|(n, v)| (n.as_str(), v.as_str().unwrap_or("")))
            .collect();
        let dst = out.entry(series_key(name, &labels)).or_default();
        for p in s["values"].as_array().map(Vec::as_slice).unwrap_or(&[]) {
            let t = p[0].as_f64().context("timestamp")?;
            let val: f64 = p[1].as_str().context("value")?.parse().context("value")?;
            dst.insert((t * 1000.0).round() as i64, val);
        }
    }
    Ok(())
}

fn truncate(s: &str, n: usize) -> &str {
    match s.char_indices().nth(n) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn read_back_keys_match_the_ledger_keys() {
        let body = br#"{"status":"success","data":{"resultType":"matrix","result":[
            {"metric":{"lane":"1","__name__":"soak_rw","s":"3"},"values":[[1700000000.123,"0.1"],[1700000001,"2e-7"]]}]}}"#;
        let mut got = HashMap::new();
        parse_matrix(body, &mut got).unwrap();
        let k = series_key("soak_rw", &[("s", "3"), ("lane", "1")]);
        assert_eq!(got[&k][&1_700_000_000_123], 0.1);
        assert_eq!(got[&k][&1_700_000_001_000], 2e-7);
    }
}

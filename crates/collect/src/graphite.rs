//! Graphite plaintext protocol: the `graphite:` config section, the line parser
//! (`path value [timestamp]`, and the tagged form `path;tag=value;...`), the path-to-metric mapping
//! rules, and the TCP listener that appends what clients send.
//!
//! Mapping: the first rule whose `match` glob fits the path wins (`*` stands for exactly one dotted
//! component); its `name` and label values may use `${N}`, the N-th `*` of the match. A path no rule
//! matches becomes the metric name with `.` and every other invalid character replaced by `_`.
//! Tags of tagged lines become labels; a rule's label replaces a tag of the same name.
//!
//! TCP has no way to answer a bad line, so bad lines and refused samples are logged with the peer
//! address and the line number within the connection; the good lines around them are written.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use serde::Deserialize;
use tocsin_model::{Clock, SystemClock};
use tocsin_storage::Appendable;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::names::{is_valid_label_name, push_sanitized, sanitize_label_name};

/// The `graphite:` config section. Absent means no Graphite listener.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct GraphiteConfig {
    /// TCP address to listen on, e.g. `127.0.0.1:2003`.
    pub listen: String,
    /// Rules tried in order; the first match wins.
    #[serde(default)]
    pub mappings: Vec<MappingRule>,
}

/// One mapping rule: `match: servers.*.cpu.*`, `name: server_cpu_${2}`, `labels: {host: "${1}"}`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct MappingRule {
    #[serde(rename = "match")]
    pub pattern: String,
    pub name: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl GraphiteConfig {
    /// Checks the listen address and compiles every rule; messages name the field
    /// (`graphite.mappings[1].name`).
    pub fn validate(&self) -> Result<(), String> {
        if self.listen.trim().is_empty() {
            return Err("graphite.listen: must not be empty".into());
        }
        Mapper::new(&self.mappings).map(|_| ())
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Capture(usize),
}

#[derive(Debug, Clone)]
struct Rule {
    /// `None` is a `*` component.
    components: Vec<Option<String>>,
    name: Vec<Part>,
    labels: Vec<(String, Vec<Part>)>,
}

/// Compiled mapping rules.
#[derive(Debug, Clone, Default)]
pub struct Mapper {
    rules: Vec<Rule>,
}

fn template(s: &str, globs: usize, field: &str) -> Result<Vec<Part>, String> {
    let mut parts = Vec::new();
    let mut lit = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        lit.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        let Some(end) = after.find('}') else {
            return Err(format!("{field}: unclosed \"${{\" in {s:?}"));
        };
        let n: usize = after[..end].parse().map_err(|_| {
            format!(
                "{field}: \"${{{}}}\" is not a capture number",
                &after[..end]
            )
        })?;
        if n == 0 || n > globs {
            return Err(format!(
                "{field}: ${{{n}}} refers to a '*' the match does not have (it has {globs})"
            ));
        }
        if !lit.is_empty() {
            parts.push(Part::Lit(std::mem::take(&mut lit)));
        }
        parts.push(Part::Capture(n));
        rest = &after[end + 1..];
    }
    lit.push_str(rest);
    if !lit.is_empty() {
        parts.push(Part::Lit(lit));
    }
    Ok(parts)
}

fn expand(parts: &[Part], caps: &[&str], out: &mut String) {
    for p in parts {
        match p {
            Part::Lit(s) => out.push_str(s),
            Part::Capture(n) => out.push_str(caps.get(n - 1).copied().unwrap_or("")),
        }
    }
}

impl Mapper {
    pub fn new(rules: &[MappingRule]) -> Result<Self, String> {
        let mut out = Vec::with_capacity(rules.len());
        for (i, r) in rules.iter().enumerate() {
            let f = format!("graphite.mappings[{i}]");
            if r.pattern.is_empty() {
                return Err(format!("{f}.match: must not be empty"));
            }
            let mut components = Vec::new();
            for c in r.pattern.split('.') {
                if c == "*" {
                    components.push(None);
                } else if c.contains('*') {
                    return Err(format!(
                        "{f}.match: '*' must be a whole dotted component in {:?}",
                        r.pattern
                    ));
                } else if c.is_empty() {
                    return Err(format!("{f}.match: empty component in {:?}", r.pattern));
                } else {
                    components.push(Some(c.to_string()));
                }
            }
            let globs = components.iter().filter(|c| c.is_none()).count();
            if r.name.is_empty() {
                return Err(format!("{f}.name: must not be empty"));
            }
            let name = template(&r.name, globs, &format!("{f}.name"))?;
            let mut labels = Vec::new();
            for (k, v) in &r.labels {
                if !is_valid_label_name(k) || k == tocsin_model::METRIC_NAME {
                    return Err(format!("{f}.labels: {k:?} is not a valid label name"));
                }
                labels.push((k.clone(), template(v, globs, &format!("{f}.labels.{k}"))?));
            }
            out.push(Rule {
                components,
                name,
                labels,
            });
        }
        Ok(Self { rules: out })
    }

    /// Label pairs (sorted by name, with `__name__`) for a parsed line.
    pub fn labels(&self, line: &Line<'_>) -> Result<Vec<(String, String)>, String> {
        let mut out: Vec<(String, String)> = Vec::with_capacity(line.tags.len() + 2);
        for (k, v) in &line.tags {
            let k = sanitize_label_name(k);
            if k == tocsin_model::METRIC_NAME {
                return Err(format!("tag {k:?} is reserved for the metric name"));
            }
            if out.iter().any(|(n, _)| *n == k) {
                return Err(format!("duplicate tag {k:?}"));
            }
            out.push((k.into_owned(), (*v).to_string()));
        }
        let mut name = String::new();
        let comps: Vec<&str> = line.path.split('.').collect();
        let rule = self.rules.iter().find(|r| {
            r.components.len() == comps.len()
                && r.components
                    .iter()
                    .zip(&comps)
                    .all(|(p, c)| p.as_deref().is_none_or(|p| p == *c))
        });
        match rule {
            Some(r) => {
                let caps: Vec<&str> = r
                    .components
                    .iter()
                    .zip(&comps)
                    .filter(|(p, _)| p.is_none())
                    .map(|(_, c)| *c)
                    .collect();
                let mut raw = String::new();
                expand(&r.name, &caps, &mut raw);
                push_sanitized(&mut name, &raw, true, true);
                for (k, parts) in &r.labels {
                    let mut v = String::new();
                    expand(parts, &caps, &mut v);
                    out.retain(|(n, _)| n != k);
                    out.push((k.clone(), v));
                }
            }
            None => push_sanitized(&mut name, line.path, true, true),
        }
        out.retain(|(_, v)| !v.is_empty());
        out.push((tocsin_model::METRIC_NAME.to_string(), name));
        out.sort();
        Ok(out)
    }
}

/// One parsed line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line<'a> {
    pub path: &'a str,
    pub tags: Vec<(&'a str, &'a str)>,
    pub value: f64,
    /// Milliseconds; the server's now when the line had none or `-1`.
    pub t_ms: i64,
}

/// Parses `path[;tag=value...] value [timestamp_seconds]`. Blank lines give `Ok(None)`.
pub fn parse_line(line: &str, now_ms: i64) -> Result<Option<Line<'_>>, String> {
    let mut it = line.split_ascii_whitespace();
    let Some(key) = it.next() else {
        return Ok(None);
    };
    let Some(value) = it.next() else {
        return Err(format!("{key:?} has no value"));
    };
    let ts = it.next();
    if it.next().is_some() {
        return Err("too many fields (expected: path value [timestamp])".into());
    }
    let mut parts = key.split(';');
    let path = parts.next().unwrap_or("");
    if path.is_empty() {
        return Err("empty metric path".into());
    }
    if path.split('.').any(str::is_empty) {
        return Err(format!("metric path {path:?} has an empty component"));
    }
    let mut tags = Vec::new();
    for t in parts {
        match t.split_once('=') {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => tags.push((k, v)),
            _ => return Err(format!("tag {t:?} is not name=value")),
        }
    }
    let value: f64 = value
        .parse()
        .map_err(|_| format!("value {value:?} is not a number"))?;
    let t_ms = match ts {
        None | Some("-1") => now_ms,
        Some(s) => {
            let secs: f64 = s
                .parse()
                .map_err(|_| format!("timestamp {s:?} is not a number of seconds"))?;
            let ms = (secs * 1000.0).floor();
            if !ms.is_finite() || ms.abs() > 9.0e15 {
                return Err(format!("timestamp {s:?} out of range"));
            }
            ms as i64
        }
    };
    Ok(Some(Line {
        path,
        tags,
        value,
        t_ms,
    }))
}

/// Lines appended per commit at most; a read buffer's worth is committed at once too.
pub const BATCH_LINES: usize = 1000;
/// A line longer than this closes the connection: nothing valid is that long.
pub const MAX_LINE_BYTES: usize = 64 << 10;

/// What appending a batch did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchStats {
    pub samples: u64,
    pub bad_lines: u64,
    pub rejected: u64,
}

/// Appends the lines of `buf` (line numbers start at `first_line`) in one commit, logging bad
/// lines and refused samples with the peer.
pub fn append_batch(
    appendable: &dyn Appendable,
    mapper: &Mapper,
    buf: &[u8],
    first_line: usize,
    peer: &str,
    now_ms: i64,
) -> BatchStats {
    let mut st = BatchStats::default();
    let mut app = appendable.appender();
    for (line_no, raw) in (first_line..).zip(buf.split(|&c| c == b'\n')) {
        let res = std::str::from_utf8(raw)
            .map_err(|_| "not valid UTF-8".to_string())
            .and_then(|l| parse_line(l, now_ms))
            .and_then(|l| match l {
                None => Ok(None),
                Some(l) => mapper.labels(&l).map(|ls| Some((ls, l.t_ms, l.value))),
            });
        let (labels, t, v) = match res {
            Ok(None) => continue,
            Ok(Some(x)) => x,
            Err(reason) => {
                st.bad_lines += 1;
                tracing::warn!(peer, line = line_no, %reason, "graphite: bad line skipped");
                continue;
            }
        };
        let pairs: Vec<(&str, &str)> = labels
            .iter()
            .map(|(a, b)| (a.as_str(), b.as_str()))
            .collect();
        match app.append_pairs(&pairs, t, v) {
            Ok(_) => st.samples += 1,
            Err(e) if e.is_sample_rejection() => {
                st.rejected += 1;
                tracing::warn!(peer, line = line_no, error = %e, "graphite: sample refused by storage");
            }
            Err(e) => {
                app.rollback();
                tracing::error!(peer, line = line_no, error = %e, "graphite: appending failed; batch dropped");
                st.samples = 0;
                return st;
            }
        }
    }
    match app.commit() {
        Ok(cs) => {
            st.rejected += cs.rejected();
            if let Some(r) = cs.first_rejection {
                tracing::warn!(peer, first = %r, "graphite: samples refused by storage at commit");
            }
        }
        Err(e) => {
            tracing::error!(peer, error = %e, "graphite: commit failed; batch dropped");
            st.samples = 0;
        }
    }
    st
}

/// Accepts Graphite plaintext connections until `stop` turns true (or its sender is dropped),
/// then lets every connection commit the complete lines it has read and returns.
pub async fn serve(
    listener: TcpListener,
    cfg: Arc<GraphiteConfig>,
    appendable: Arc<dyn Appendable>,
    mut stop: watch::Receiver<bool>,
) -> crate::Result<()> {
    let mapper = Arc::new(Mapper::new(&cfg.mappings).map_err(crate::Error::Config)?);
    let mut tasks = tokio::task::JoinSet::new();
    while !*stop.borrow() {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    tasks.spawn(connection(stream, peer, mapper.clone(), appendable.clone(), stop.clone()));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %e, "graphite: accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            r = stop.changed() => if r.is_err() { break },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    while tasks.join_next().await.is_some() {}
    Ok(())
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    mapper: Arc<Mapper>,
    appendable: Arc<dyn Appendable>,
    mut stop: watch::Receiver<bool>,
) {
    let peer = peer.to_string();
    let mut reader = BufReader::with_capacity(64 << 10, stream);
    let mut pending: Vec<u8> = Vec::new();
    let mut next_line = 1usize;
    loop {
        let eof = tokio::select! {
            r = reader.fill_buf() => match r {
                Ok([]) => true,
                Ok(buf) => {
                    let n = buf.len();
                    pending.extend_from_slice(buf);
                    reader.consume(n);
                    false
                }
                Err(e) => {
                    tracing::warn!(peer, error = %e, "graphite: read failed; closing");
                    true
                }
            },
            r = stop.changed() => { let _ = r; true }
        };
        let stopping = eof && *stop.borrow();
        // Commit the complete lines read so far; at end of stream also the unterminated last line
        // (clients such as `nc` often omit the final newline). At shutdown a partial line is dropped.
        let cut = if eof && !stopping {
            pending.len()
        } else {
            pending
                .iter()
                .rposition(|&c| c == b'\n')
                .map_or(0, |i| i + 1)
        };
        if cut > 0 {
            let rest = pending.split_off(cut);
            let batch = std::mem::replace(&mut pending, rest);
            next_line = flush(&appendable, &mapper, batch, next_line, &peer).await;
        }
        if eof {
            if stopping && !pending.is_empty() {
                tracing::warn!(
                    peer,
                    line = next_line,
                    "graphite: unterminated line dropped at shutdown"
                );
            }
            return;
        }
        if pending.len() > MAX_LINE_BYTES {
            tracing::warn!(
                peer,
                line = next_line,
                "graphite: line longer than {MAX_LINE_BYTES} bytes; closing"
            );
            return;
        }
    }
}

/// Appends `batch` in chunks of at most [`BATCH_LINES`] lines on the blocking pool (commits write
/// the WAL); returns the next line number.
async fn flush(
    appendable: &Arc<dyn Appendable>,
    mapper: &Arc<Mapper>,
    batch: Vec<u8>,
    first_line: usize,
    peer: &str,
) -> usize {
    let (a, m, p) = (appendable.clone(), mapper.clone(), peer.to_string());
    let res = tokio::task::spawn_blocking(move || {
        let now = SystemClock.now_ms();
        let mut line = first_line;
        let mut start = 0;
        while start < batch.len() {
            let mut end = start;
            let mut lines = 0;
            while end < batch.len() && lines < BATCH_LINES {
                match batch[end..].iter().position(|&c| c == b'\n') {
                    Some(i) => end += i + 1,
                    None => end = batch.len(),
                }
                lines += 1;
            }
            append_batch(&*a, &m, &batch[start..end], line, &p, now);
            line += lines;
            start = end;
        }
        line
    })
    .await;
    match res {
        Ok(n) => n,
        Err(e) => {
            tracing::error!(peer, error = %e, "graphite: append task failed");
            first_line
        }
    }
}

#[cfg(test)]
mod tests;

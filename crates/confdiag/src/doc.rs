//! A parsed YAML document that knows where its nodes are, deserialized section by section while
//! collecting every error: a node serde refuses is reported at its position, removed, and the
//! section deserialized again, so one run reports every bad field instead of the first.

use std::collections::HashMap;

use serde::de::DeserializeOwned;
use serde_norway::{Mapping, Value};

use crate::pos::join;
use crate::suggest::unknown_field;
use crate::{Diagnostic, Diagnostics, Pos, PosIndex};

/// Bounds the report-remove-retry loop (each round removes one node, so this is plenty).
const MAX_ERRORS_PER_SECTION: usize = 100;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Seg {
    Key(String),
    Index(usize),
}

fn render(segs: &[Seg]) -> String {
    let mut s = String::new();
    for g in segs {
        match g {
            Seg::Key(k) => s = join(&s, k),
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Splits `a.b[1].c` into segments (keys holding `.` or `[` are not expected in configs).
fn parse_path(path: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in path.split('.').filter(|p| !p.is_empty()) {
        let mut rest = part;
        if let Some(i) = rest.find('[') {
            if i > 0 {
                out.push(Seg::Key(rest[..i].to_string()));
            }
            rest = &rest[i..];
            while let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').unwrap_or(r.len());
                if let Ok(n) = r[..end].parse() {
                    out.push(Seg::Index(n));
                }
                rest = r.get(end + 1..).unwrap_or("");
            }
        } else {
            out.push(Seg::Key(rest.to_string()));
        }
    }
    out
}

fn get<'a>(v: &'a Value, segs: &[Seg]) -> Option<&'a Value> {
    segs.iter().try_fold(v, |v, s| match s {
        Seg::Key(k) => v.as_mapping()?.get(k.as_str()),
        Seg::Index(i) => v.as_sequence()?.get(*i),
    })
}

fn get_mut<'a>(v: &'a mut Value, segs: &[Seg]) -> Option<&'a mut Value> {
    segs.iter().try_fold(v, |v, s| match s {
        Seg::Key(k) => v.as_mapping_mut()?.get_mut(k.as_str()),
        Seg::Index(i) => v.as_sequence_mut()?.get_mut(*i),
    })
}

/// A YAML file loaded for checking.
#[derive(Debug, Clone)]
pub struct Doc {
    file: String,
    index: PosIndex,
    value: Value,
    /// List items removed after an error, by the list's path in the original text: later paths
    /// are translated back so positions and messages name the item as written.
    removed: HashMap<String, Vec<usize>>,
}

impl Doc {
    /// Loads `text`; a YAML syntax error is the one diagnostic. An empty file is an empty mapping.
    pub fn parse(text: &str, file: &str) -> Result<Doc, Diagnostics> {
        let mut value: Value = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_norway::from_str(text).map_err(|e| {
                let pos = e.location().map(|l| Pos {
                    line: l.line(),
                    col: l.column(),
                });
                // The position leads the line; the message need not say it again.
                let mut msg = e.to_string();
                if let Some(p) = pos {
                    msg = msg.replacen(&format!(" at line {} column {}", p.line, p.col), "", 1);
                }
                Diagnostics(vec![Diagnostic::new(file, pos, "", msg)])
            })?
        };
        if let Err(e) = value.apply_merge() {
            return Err(Diagnostics(vec![Diagnostic::new(
                file,
                None,
                "",
                e.to_string(),
            )]));
        }
        if value.is_null() {
            value = Value::Mapping(Mapping::new());
        }
        Ok(Doc {
            file: file.to_string(),
            index: PosIndex::build(text),
            value,
            removed: HashMap::new(),
        })
    }

    pub fn file(&self) -> &str {
        &self.file
    }

    /// The document as it stands (nodes refused by [`Doc::take`] are gone).
    pub fn value(&self) -> &Value {
        &self.value
    }

    /// The node at `path`, if present.
    pub fn get(&self, path: &str) -> Option<&Value> {
        get(&self.value, &parse_path(path))
    }

    /// Positions of the original text.
    pub fn index(&self) -> &PosIndex {
        &self.index
    }

    /// `path` (as the remaining document sees it) as written in the original text.
    pub fn original_path(&self, path: &str) -> String {
        let mut orig = String::new();
        for s in parse_path(path) {
            match s {
                Seg::Key(k) => orig = join(&orig, &k),
                Seg::Index(j) => {
                    let gone = self.removed.get(&orig);
                    let i = (0..)
                        .filter(|i| !gone.is_some_and(|g| g.contains(i)))
                        .nth(j)
                        .unwrap_or(j);
                    orig.push_str(&format!("[{i}]"));
                }
            }
        }
        orig
    }

    /// A problem with the value at `path`, placed at that value (or its nearest ancestor).
    pub fn at(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let orig = self.original_path(path);
        Diagnostic::new(&self.file, self.index.nearest(&orig, false), &orig, message)
    }

    /// A problem with the field `path` itself (unknown, unsupported), placed at its key.
    pub fn at_key(&self, path: &str, message: impl Into<String>) -> Diagnostic {
        let orig = self.original_path(path);
        Diagnostic::new(&self.file, self.index.nearest(&orig, true), &orig, message)
    }

    /// Deserializes the node at `path` (absent = null) into `T`. Each error is pushed to `out`
    /// and its node removed before trying again, so every bad field is reported; the result is
    /// `T` without the refused nodes, or None when the node as a whole cannot be read.
    pub fn take<T: DeserializeOwned>(
        &mut self,
        path: &str,
        out: &mut Vec<Diagnostic>,
    ) -> Option<T> {
        let base = parse_path(path);
        for _ in 0..MAX_ERRORS_PER_SECTION {
            let node = get(&self.value, &base).cloned().unwrap_or(Value::Null);
            let err = match serde_path_to_error::deserialize::<_, T>(node) {
                Ok(v) => return Some(v),
                Err(e) => e,
            };
            let mut segs = base.clone();
            for s in err.path().iter() {
                match s {
                    serde_path_to_error::Segment::Seq { index } => segs.push(Seg::Index(*index)),
                    serde_path_to_error::Segment::Map { key } => segs.push(Seg::Key(key.clone())),
                    serde_path_to_error::Segment::Enum { variant } => {
                        segs.push(Seg::Key(variant.clone()))
                    }
                    serde_path_to_error::Segment::Unknown => break,
                }
            }
            let msg = err.into_inner().to_string();
            let (msg, is_key) = match unknown_field(&msg) {
                Some((field, text)) => {
                    // Beside flattened fields serde does not say where the key was; it is in
                    // the mapping the error is at.
                    if segs.last() != Some(&Seg::Key(field.clone()))
                        && get(&self.value, &segs)
                            .and_then(Value::as_mapping)
                            .is_some_and(|m| m.contains_key(field.as_str()))
                    {
                        segs.push(Seg::Key(field));
                    }
                    (text, true)
                }
                None => (msg, false),
            };
            let p = render(&segs);
            out.push(if is_key {
                self.at_key(&p, msg)
            } else {
                self.at(&p, msg)
            });
            if segs.len() <= base.len() || !self.remove(&segs) {
                return None;
            }
        }
        None
    }

    /// Removes the node at `segs` from its parent; false when there is nothing to remove.
    fn remove(&mut self, segs: &[Seg]) -> bool {
        let Some((last, parent)) = segs.split_last() else {
            return false;
        };
        let parent_orig = self.original_path(&render(parent));
        let Some(pv) = get_mut(&mut self.value, parent) else {
            return false;
        };
        match last {
            Seg::Key(k) => pv
                .as_mapping_mut()
                .and_then(|m| m.remove(k.as_str()))
                .is_some(),
            Seg::Index(j) => {
                let Some(seq) = pv.as_sequence_mut() else {
                    return false;
                };
                if *j >= seq.len() {
                    return false;
                }
                seq.remove(*j);
                let gone = self.removed.entry(parent_orig).or_default();
                let i = (0..).filter(|i| !gone.contains(i)).nth(*j).unwrap_or(*j);
                gone.push(i);
                true
            }
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Job {
        job_name: String,
        #[serde(default)]
        scrape_interval: Option<u64>,
    }

    #[derive(Debug, Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct Cfg {
        #[serde(default)]
        jobs: Vec<Job>,
        #[serde(default)]
        name: String,
    }

    #[test]
    fn every_error_of_a_file_in_one_run() {
        let t = "name: x\njobs:\n  - job_name: a\n    scrape_intervl: 5\n  - scrape_interval: 5\n  - job_name: c\n    scrape_interval: soon\n  - job_name: d\n    scrape_interval: 1\nbogus: 1\n";
        let mut doc = Doc::parse(t, "t.yml").unwrap();
        let mut out = Vec::new();
        let c: Cfg = doc.take("", &mut out).unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.jobs[2].job_name, "d");
        assert_eq!(c.jobs[2].scrape_interval, Some(1));
        let lines: Vec<String> = Diagnostics(out).sorted().lines();
        assert_eq!(
            lines,
            vec![
                "t.yml:4:5: jobs[0].scrape_intervl: unknown field `scrape_intervl`, did you mean `scrape_interval`?",
                "t.yml:5:5: jobs[1]: missing field `job_name`",
                "t.yml:7:22: jobs[2].scrape_interval: invalid type: string \"soon\", expected u64",
                "t.yml:10:1: bogus: unknown field `bogus`",
            ]
        );
        // What remains is still read, and later paths name items as written.
        assert_eq!(c.jobs.len(), 3);
        assert_eq!(doc.original_path("jobs[1]"), "jobs[2]");
        assert_eq!(doc.original_path("jobs[2].x"), "jobs[3].x");
        assert_eq!(
            doc.at("jobs[2].scrape_interval", "m").to_string(),
            "t.yml:9:22: jobs[3].scrape_interval: m"
        );
    }

    #[test]
    fn syntax_error_has_position_and_empty_is_empty() {
        let e = Doc::parse("a: [1, 2\nb: c\n", "t.yml").unwrap_err();
        assert!(e.0[0].pos.is_some(), "{e}");
        assert!(e.to_string().starts_with("t.yml:"), "{e}");
        let mut d = Doc::parse("  \n", "t.yml").unwrap();
        let c: Cfg = d.take("", &mut Vec::new()).unwrap();
        assert!(c.jobs.is_empty());
    }

    #[test]
    fn path_round_trip() {
        let s = parse_path("a.b[1][2].c");
        assert_eq!(render(&s), "a.b[1][2].c");
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod scalar_tests {
    #[test]
    /// Loading through a `Value` must accept exactly what loading from the text accepted.
    fn numbers_into_strings_like_from_str() {
        let t = "a: 1\nb: true\nc: 1.5\n";
        let direct: Result<std::collections::BTreeMap<String, String>, _> =
            serde_norway::from_str(t);
        let mut d = super::Doc::parse(t, "t.yml").unwrap();
        let mut out = Vec::new();
        let via: Option<std::collections::BTreeMap<String, String>> = d.take("", &mut out);
        assert_eq!(direct.is_ok(), via.is_some(), "{direct:?} {out:?}");
    }
}

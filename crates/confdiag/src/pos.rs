//! Where each node of a YAML document is: a map from a path (`a.b[1].c`) to the line and column
//! of its key and of its value, built from a YAML parser's events so positions are exact whatever
//! the layout (block or flow style, comments, quoting).

use std::collections::HashMap;

use yaml_rust2::parser::{Event, Parser};
use yaml_rust2::scanner::Marker;

/// A place in the text; both 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct Pos {
    pub line: usize,
    pub col: usize,
}

#[derive(Debug, Clone, Copy)]
struct Node {
    key: Option<Pos>,
    value: Pos,
}

/// Positions of the nodes of the first document of a text.
#[derive(Debug, Default, Clone)]
pub struct PosIndex {
    nodes: HashMap<String, Node>,
}

enum Frame {
    Map {
        path: String,
        /// The key read and waiting for its value.
        key: Option<(String, Pos)>,
    },
    Seq {
        path: String,
        next: usize,
    },
}

fn pos(m: &Marker) -> Pos {
    Pos {
        line: m.line(),
        col: m.col() + 1,
    }
}

/// `path` joined with a mapping key.
pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

impl PosIndex {
    /// Indexes what parses; a syntax error ends the index there (the YAML loader reports it).
    pub fn build(text: &str) -> PosIndex {
        let mut idx = PosIndex::default();
        let mut parser = Parser::new_from_str(text);
        let mut stack: Vec<Frame> = Vec::new();
        let mut started = false;
        while let Ok((ev, m)) = parser.next_token() {
            let opens = match &ev {
                Event::StreamEnd | Event::DocumentEnd => break,
                Event::MappingEnd | Event::SequenceEnd => {
                    stack.pop();
                    if stack.is_empty() && started {
                        break;
                    }
                    continue;
                }
                Event::Scalar(..) | Event::Alias(_) => None,
                Event::MappingStart(..) => Some(true),
                Event::SequenceStart(..) => Some(false),
                _ => continue,
            };
            let p = pos(&m);
            // A node starts here: it is a mapping key, or the value at a path.
            let path = match stack.last_mut() {
                None => String::new(),
                Some(Frame::Map {
                    key: key @ None, ..
                }) => {
                    let text = match &ev {
                        Event::Scalar(s, ..) => s.clone(),
                        _ => "?".into(),
                    };
                    *key = Some((text, p));
                    if let Some(Frame::Map { path, .. }) = stack.last() {
                        // A block mapping's start event comes after its first key; the mapping
                        // is where that key is.
                        if let Some(n) = idx.nodes.get_mut(path.as_str()) {
                            n.value = n.value.min(p);
                        }
                    }
                    if opens.is_none() {
                        continue;
                    }
                    // A complex key: its insides get a path no lookup will ask for.
                    "\u{0}".into()
                }
                Some(Frame::Map { path, key }) => {
                    let (k, kp) = key.take().unwrap_or_default();
                    let child = join(path, &k);
                    idx.insert(child.clone(), Some(kp), p);
                    child
                }
                Some(Frame::Seq { path, next }) => {
                    let child = format!("{path}[{next}]");
                    *next += 1;
                    idx.insert(child.clone(), None, p);
                    child
                }
            };
            if stack.is_empty() {
                idx.insert(String::new(), None, p);
                started = true;
            }
            match opens {
                Some(true) => stack.push(Frame::Map { path, key: None }),
                Some(false) => stack.push(Frame::Seq { path, next: 0 }),
                None => {
                    if stack.is_empty() {
                        break;
                    }
                }
            }
        }
        idx
    }

    fn insert(&mut self, path: String, key: Option<Pos>, value: Pos) {
        self.nodes.entry(path).or_insert(Node { key, value });
    }

    /// Where the value at `path` starts.
    pub fn value(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).map(|n| n.value)
    }

    /// Where the key of `path` is (none for list items and the root).
    pub fn key(&self, path: &str) -> Option<Pos> {
        self.nodes.get(path).and_then(|n| n.key)
    }

    /// The position of `path` (its key when `key` is set and it has one, else its value), or of
    /// its nearest ancestor that is in the text.
    pub fn nearest(&self, path: &str, key: bool) -> Option<Pos> {
        let mut p = path;
        loop {
            if let Some(n) = self.nodes.get(p) {
                return Some(if key {
                    n.key.unwrap_or(n.value)
                } else {
                    n.value
                });
            }
            if p.is_empty() {
                return None;
            }
            p = match p.rfind(['.', '[']) {
                Some(i) => &p[..i],
                None => "",
            };
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn block_and_flow_positions() {
        let t = "# head\nglobal:\n  scrape_interval: 15s\nscrape_configs:\n  - job_name: a\n    static_configs: [{targets: ['x:1']}]\n  - job_name: b\n";
        let i = PosIndex::build(t);
        assert_eq!(
            i.key("global.scrape_interval"),
            Some(Pos { line: 3, col: 3 })
        );
        assert_eq!(
            i.value("global.scrape_interval"),
            Some(Pos { line: 3, col: 20 })
        );
        assert_eq!(
            i.value("scrape_configs[1].job_name"),
            Some(Pos { line: 7, col: 15 })
        );
        assert_eq!(i.value("scrape_configs[1]"), Some(Pos { line: 7, col: 5 }));
        assert_eq!(
            i.value("scrape_configs[0].static_configs[0].targets[0]"),
            Some(Pos { line: 6, col: 33 })
        );
        assert_eq!(
            i.nearest("scrape_configs[1].nothing.deeper", false),
            Some(Pos { line: 7, col: 5 })
        );
        assert_eq!(i.value(""), Some(Pos { line: 2, col: 1 }));
    }
}

//! The routing tree built from `route:`: each node's effective options (inherited from its parent
//! when unset), its matchers, and Alertmanager's matching walk — depth-first, left to right, stopping
//! at the first matching child unless that child has `continue: true`; a node none of whose children
//! match is itself the match. Each node has Alertmanager's key (`{}/{severity="critical"}`), which
//! prefixes the group keys receivers see, and id (the key plus the node's position among its
//! siblings).

use std::collections::BTreeSet;

use tocsin_model::{Labels, LabelsBuilder, Matcher};

use crate::config::{
    compile_matchers, AmConfig, RouteConfig, DEFAULT_GROUP_INTERVAL_MS, DEFAULT_GROUP_WAIT_MS,
    DEFAULT_REPEAT_INTERVAL_MS,
};
use crate::error::{Error, Result};
use crate::matchers::{labels_string, matchers_string, matches_all, sort_matchers};

/// Which labels of an alert make its group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GroupBy {
    Labels(BTreeSet<String>),
    /// `group_by: ['...']`: every label, i.e. one group per alert.
    All,
}

/// One node, with its effective (inherited) options.
#[derive(Debug, Clone)]
pub struct Route {
    /// Position in depth-first pre-order; the root is 0. Unique within a tree.
    pub index: usize,
    pub parent: Option<usize>,
    pub children: Vec<usize>,
    /// Sorted as Alertmanager sorts them (the key depends on the order).
    pub matchers: Vec<Matcher>,
    pub continue_: bool,
    pub receiver: String,
    pub group_by: GroupBy,
    pub group_wait_ms: i64,
    pub group_interval_ms: i64,
    pub repeat_interval_ms: i64,
    /// Not inherited, as in Alertmanager.
    pub mute_time_intervals: Vec<String>,
    pub active_time_intervals: Vec<String>,
    /// Whether acknowledged alerts are repeated every `repeat_interval` (inherited; default
    /// false).
    pub notify_acked: bool,
    /// Alertmanager's `Route.Key()`: the matchers of every node from the root, `/`-separated.
    pub key: String,
    /// Alertmanager's `Route.ID()`: the key plus `/<position among siblings>` below the root.
    pub id: String,
}

impl Route {
    /// The labels of `labels` this route groups by.
    pub fn group_labels(&self, labels: &Labels) -> Labels {
        match &self.group_by {
            GroupBy::All => labels.clone(),
            GroupBy::Labels(names) => {
                let mut b = LabelsBuilder::new();
                for l in labels.iter().filter(|l| names.contains(&l.name)) {
                    b.set(&l.name, &l.value);
                }
                b.build()
            }
        }
    }

    /// Alertmanager's group key for a group of this route: `{route key}:{group labels}`.
    pub fn group_key(&self, group_labels: &Labels) -> String {
        format!("{}:{}", self.key, labels_string(group_labels))
    }
}

/// The whole tree, nodes stored in pre-order.
#[derive(Debug, Clone)]
pub struct RouteTree {
    routes: Vec<Route>,
}

impl RouteTree {
    pub fn from_config(cfg: &AmConfig) -> Result<RouteTree> {
        let root = cfg
            .route
            .as_ref()
            .ok_or_else(|| Error::Config("no route provided".into()))?;
        RouteTree::build(root)
    }

    /// Builds the tree from a validated root.
    pub fn build(root: &RouteConfig) -> Result<RouteTree> {
        let mut t = RouteTree { routes: Vec::new() };
        t.add(root, None, 0, "route")?;
        Ok(t)
    }

    fn add(
        &mut self,
        c: &RouteConfig,
        parent: Option<usize>,
        position: usize,
        path: &str,
    ) -> Result<usize> {
        let p = parent.and_then(|i| self.routes.get(i));
        let mut matchers = compile_matchers(&c.match_, &c.match_re, &c.matchers)
            .map_err(|e| Error::Config(format!("{path}: {e}")))?;
        sort_matchers(&mut matchers);
        let inherited_group_by = p.map_or(GroupBy::Labels(BTreeSet::new()), |p| p.group_by.clone());
        // An empty `group_by: []` inherits, as Alertmanager reads it.
        let group_by = match &c.group_by {
            Some(g) if g.iter().any(|l| l == "...") => GroupBy::All,
            Some(g) if !g.is_empty() => GroupBy::Labels(g.iter().cloned().collect()),
            _ => inherited_group_by,
        };
        let key = match p {
            Some(p) => format!("{}/{}", p.key, matchers_string(&matchers)),
            None => matchers_string(&matchers),
        };
        let id = if parent.is_some() {
            format!("{key}/{position}")
        } else {
            key.clone()
        };
        let route = Route {
            index: self.routes.len(),
            parent,
            children: Vec::new(),
            continue_: c.continue_,
            receiver: if c.receiver.is_empty() {
                p.map(|p| p.receiver.clone()).unwrap_or_default()
            } else {
                c.receiver.clone()
            },
            group_by,
            group_wait_ms: c.group_wait.map_or_else(
                || p.map_or(DEFAULT_GROUP_WAIT_MS, |p| p.group_wait_ms),
                |d| d.0,
            ),
            group_interval_ms: c.group_interval.map_or_else(
                || p.map_or(DEFAULT_GROUP_INTERVAL_MS, |p| p.group_interval_ms),
                |d| d.0,
            ),
            repeat_interval_ms: c.repeat_interval.map_or_else(
                || p.map_or(DEFAULT_REPEAT_INTERVAL_MS, |p| p.repeat_interval_ms),
                |d| d.0,
            ),
            mute_time_intervals: c.mute_time_intervals.clone(),
            active_time_intervals: c.active_time_intervals.clone(),
            notify_acked: c
                .notify_acked
                .unwrap_or_else(|| p.is_some_and(|p| p.notify_acked)),
            matchers,
            key,
            id,
        };
        let idx = route.index;
        self.routes.push(route);
        for (i, child) in c.routes.iter().enumerate() {
            let ci = self.add(child, Some(idx), i, &format!("{path}.routes[{i}]"))?;
            if let Some(r) = self.routes.get_mut(idx) {
                r.children.push(ci);
            }
        }
        Ok(idx)
    }

    pub fn root(&self) -> &Route {
        &self.routes[0]
    }

    pub fn get(&self, index: usize) -> Option<&Route> {
        self.routes.get(index)
    }

    /// Every node in pre-order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.iter()
    }

    /// The routes an alert with `labels` is handled by, in tree order.
    pub fn matches(&self, labels: &Labels) -> Vec<&Route> {
        let mut out = Vec::new();
        self.walk(0, labels, &mut out);
        out
    }

    fn walk<'a>(&'a self, i: usize, labels: &Labels, out: &mut Vec<&'a Route>) -> bool {
        let Some(r) = self.routes.get(i) else {
            return false;
        };
        if !matches_all(&r.matchers, labels) {
            return false;
        }
        let before = out.len();
        for &c in &r.children {
            let matched = self.walk(c, labels, out);
            if matched && !self.routes.get(c).is_some_and(|c| c.continue_) {
                break;
            }
        }
        if out.len() == before {
            out.push(r);
        }
        true
    }

    /// Receiver names of the routes `labels` lead to, in route order (repeats kept, as the
    /// alerts API shows them).
    pub fn receivers_for(&self, labels: &Labels) -> Vec<String> {
        self.matches(labels)
            .into_iter()
            .map(|r| r.receiver.clone())
            .collect()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    /// A routing-tree case file: a configuration and alerts with the receivers and group keys
    /// they must reach.
    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Case {
        config: String,
        cases: Vec<Expect>,
    }

    #[derive(serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Expect {
        labels: std::collections::BTreeMap<String, String>,
        receivers: Vec<String>,
        #[serde(default)]
        group_keys: Option<Vec<String>>,
        #[serde(default)]
        route_ids: Option<Vec<String>>,
        /// Effective (group_wait, group_interval, repeat_interval) per matched route, as durations.
        #[serde(default)]
        timers: Option<Vec<[String; 3]>>,
        #[serde(default)]
        group_by: Option<Vec<Vec<String>>>,
    }

    #[test]
    fn routing_testdata() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/testdata/routing");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "yml"))
            .collect();
        files.sort();
        assert!(!files.is_empty());
        let mut n = 0;
        for f in files {
            let name = f.display().to_string();
            let case: Case = serde_norway::from_str(&std::fs::read_to_string(&f).unwrap())
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let cfg = AmConfig::parse(&case.config, &name).unwrap_or_else(|e| panic!("{e}"));
            let tree = RouteTree::from_config(&cfg).unwrap();
            for (i, c) in case.cases.iter().enumerate() {
                let pairs: Vec<(&str, &str)> = c
                    .labels
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect();
                let labels = Labels::from_pairs(&pairs);
                let routes = tree.matches(&labels);
                let what = format!("{name} case {i} {labels}");
                let got: Vec<&str> = routes.iter().map(|r| r.receiver.as_str()).collect();
                assert_eq!(got, c.receivers, "{what}: receivers");
                if let Some(keys) = &c.group_keys {
                    let got: Vec<String> = routes
                        .iter()
                        .map(|r| r.group_key(&r.group_labels(&labels)))
                        .collect();
                    assert_eq!(&got, keys, "{what}: group keys");
                }
                if let Some(ids) = &c.route_ids {
                    let got: Vec<&str> = routes.iter().map(|r| r.id.as_str()).collect();
                    assert_eq!(&got, ids, "{what}: route ids");
                }
                if let Some(timers) = &c.timers {
                    let got: Vec<[i64; 3]> = routes
                        .iter()
                        .map(|r| [r.group_wait_ms, r.group_interval_ms, r.repeat_interval_ms])
                        .collect();
                    let want: Vec<[i64; 3]> = timers
                        .iter()
                        .map(|t| {
                            t.clone()
                                .map(|d| tocsin_model::duration::parse_duration_ms(&d).unwrap())
                        })
                        .collect();
                    assert_eq!(got, want, "{what}: timers");
                }
                if let Some(gb) = &c.group_by {
                    let got: Vec<Vec<String>> = routes
                        .iter()
                        .map(|r| match &r.group_by {
                            GroupBy::All => vec!["...".to_string()],
                            GroupBy::Labels(l) => l.iter().cloned().collect(),
                        })
                        .collect();
                    assert_eq!(&got, gb, "{what}: group_by");
                }
                n += 1;
            }
        }
        assert!(n >= 10, "only {n} routing cases");
    }

    #[test]
    fn keys_and_ids() {
        let cfg = AmConfig::parse(
            "route:\n  receiver: a\n  routes:\n  - matchers: ['b=\"1\"', 'a=~\"x|y\"']\n    receiver: a\n    routes:\n    - match: {c: d}\n  - matchers: ['b=\"1\"']\nreceivers:\n- name: a\n",
            "t.yml",
        )
        .unwrap();
        let t = RouteTree::from_config(&cfg).unwrap();
        let keys: Vec<(&str, &str)> = t.iter().map(|r| (r.key.as_str(), r.id.as_str())).collect();
        assert_eq!(
            keys,
            [
                ("{}", "{}"),
                (r#"{}/{a=~"x|y",b="1"}"#, r#"{}/{a=~"x|y",b="1"}/0"#),
                (
                    r#"{}/{a=~"x|y",b="1"}/{c="d"}"#,
                    r#"{}/{a=~"x|y",b="1"}/{c="d"}/0"#
                ),
                (r#"{}/{b="1"}"#, r#"{}/{b="1"}/1"#),
            ]
        );
        assert_eq!(t.root().children, [1, 3]);
    }
}

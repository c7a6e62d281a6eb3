//! Alertmanager's configuration file (`alertmanager.yml`, or the `alertmanager:` section of
//! `tocsin.yml`): `global`, `route`, `receivers`, `inhibit_rules`, `time_intervals`,
//! `mute_time_intervals` and `templates`, read so that an existing file loads unchanged. Parsing
//! refuses unknown fields of our own structs with the file and line; validation then reports every
//! semantic problem at once, each as `file:line: path: message` (or `file: path: message` when the
//! line cannot be found), as `amtool check-config` would.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use serde::{Deserialize, Deserializer};
use tocsin_model::duration::parse_duration_ms;
use tocsin_model::labels::validate_label_name;
use tocsin_model::{MatchOp, Matcher};

use crate::error::{Error, Result};
use crate::matchers::parse_matchers;
use crate::notify::ReceiverConfig;
use crate::timeinterval::{TimeIntervalConfig, TimeIntervals};

/// A YAML scalar read as text, whatever its YAML type: Alertmanager's Go decoder turns `severity: 1`
/// or `days_of_month: [1]` into strings, so we must too.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct Scalar(pub String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        use serde_norway::Value;
        match Value::deserialize(d)? {
            Value::String(s) => Ok(Scalar(s)),
            Value::Number(n) => Ok(Scalar(n.to_string())),
            Value::Bool(b) => Ok(Scalar(b.to_string())),
            Value::Null => Ok(Scalar(String::new())),
            _ => Err(serde::de::Error::custom("expected a string")),
        }
    }
}

impl From<&str> for Scalar {
    fn from(s: &str) -> Self {
        Scalar(s.to_string())
    }
}

/// A Prometheus-style duration (`30s`, `1h30m`, `1d`, `1w`), held in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AmDuration(pub i64);

impl<'de> Deserialize<'de> for AmDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = Scalar::deserialize(d)?;
        parse_duration_ms(&s.0)
            .map(AmDuration)
            .map_err(serde::de::Error::custom)
    }
}

pub const DEFAULT_RESOLVE_TIMEOUT_MS: i64 = 5 * 60_000;
pub const DEFAULT_GROUP_WAIT_MS: i64 = 30_000;
pub const DEFAULT_GROUP_INTERVAL_MS: i64 = 5 * 60_000;
pub const DEFAULT_REPEAT_INTERVAL_MS: i64 = 4 * 3_600_000;

/// The configuration used when the server has no `alertmanager:` section: every alert goes to a
/// receiver named `default` that has no integrations.
pub const MINIMAL_CONFIG: &str = "route:\n  receiver: default\nreceivers:\n  - name: default\n";

/// Alertmanager's global fields. Only `resolve_timeout` matters to routing; `http_config` and
/// the integration defaults (`smtp_*`, `slack_api_url`, ...; read from `other` by
/// `notify::NotifyGlobals`) are for receivers.
#[derive(Debug, Clone, Deserialize)]
pub struct GlobalConfig {
    #[serde(default = "default_resolve_timeout")]
    pub resolve_timeout: AmDuration,
    #[serde(default)]
    pub http_config: Option<tocsin_httpclient::HttpClientConfig>,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_norway::Value>,
}

fn default_resolve_timeout() -> AmDuration {
    AmDuration(DEFAULT_RESOLVE_TIMEOUT_MS)
}

impl Default for GlobalConfig {
    fn default() -> Self {
        GlobalConfig {
            resolve_timeout: default_resolve_timeout(),
            http_config: None,
            other: BTreeMap::new(),
        }
    }
}

/// Global fields Alertmanager knows; anything else in `global:` draws a warning (a typo of
/// `resolve_timeout` would otherwise go unnoticed).
const KNOWN_GLOBAL_FIELDS: &[&str] = &[
    "smtp_from",
    "smtp_smarthost",
    "smtp_hello",
    "smtp_auth_username",
    "smtp_auth_password",
    "smtp_auth_password_file",
    "smtp_auth_identity",
    "smtp_auth_secret",
    "smtp_auth_secret_file",
    "smtp_require_tls",
    "smtp_tls_config",
    "smtp_force_implicit_tls",
    "jira_api_url",
    "slack_api_url",
    "slack_api_url_file",
    "slack_app_token",
    "slack_app_token_file",
    "slack_app_url",
    "victorops_api_key",
    "victorops_api_key_file",
    "victorops_api_url",
    "pagerduty_url",
    "opsgenie_api_key",
    "opsgenie_api_key_file",
    "opsgenie_api_url",
    "rocketchat_api_url",
    "rocketchat_token",
    "rocketchat_token_file",
    "rocketchat_token_id",
    "rocketchat_token_id_file",
    "wechat_api_url",
    "wechat_api_secret",
    "wechat_api_secret_file",
    "wechat_api_corp_id",
    "telegram_api_url",
    "telegram_bot_token",
    "telegram_bot_token_file",
    "webex_api_url",
    "mattermost_webhook_url",
    "mattermost_webhook_url_file",
    "discord_webhook_url",
    "incidentio_url",
];

/// One node of the routing tree as written. Unset options are inherited from the parent.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    #[serde(default)]
    pub receiver: String,
    /// None: inherit. `['...']`: group by every label.
    #[serde(default)]
    pub group_by: Option<Vec<String>>,
    #[serde(default, rename = "continue")]
    pub continue_: bool,
    /// Deprecated equality matchers, still honoured.
    #[serde(default, rename = "match")]
    pub match_: BTreeMap<String, Scalar>,
    /// Deprecated regex matchers (anchored), still honoured.
    #[serde(default)]
    pub match_re: BTreeMap<String, Scalar>,
    /// Matcher strings in Alertmanager's syntax; one string may hold several matchers.
    #[serde(default)]
    pub matchers: Vec<Scalar>,
    #[serde(default)]
    pub group_wait: Option<AmDuration>,
    #[serde(default)]
    pub group_interval: Option<AmDuration>,
    #[serde(default)]
    pub repeat_interval: Option<AmDuration>,
    #[serde(default)]
    pub mute_time_intervals: Vec<String>,
    #[serde(default)]
    pub active_time_intervals: Vec<String>,
    /// Tocsin's own: whether alerts acknowledged through the API are still repeated every
    /// `repeat_interval` (default false: a group whose firing alerts are all acknowledged is not
    /// repeated). None: inherit.
    #[serde(default)]
    pub notify_acked: Option<bool>,
    #[serde(default)]
    pub routes: Vec<RouteConfig>,
}

/// One entry of `inhibit_rules:`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct InhibitRuleConfig {
    #[serde(default)]
    pub source_match: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub source_match_re: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub source_matchers: Vec<Scalar>,
    #[serde(default)]
    pub target_match: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub target_match_re: BTreeMap<String, Scalar>,
    #[serde(default)]
    pub target_matchers: Vec<Scalar>,
    #[serde(default)]
    pub equal: Vec<String>,
}

impl InhibitRuleConfig {
    pub fn source(&self) -> std::result::Result<Vec<Matcher>, String> {
        compile_matchers(
            &self.source_match,
            &self.source_match_re,
            &self.source_matchers,
        )
    }
    pub fn target(&self) -> std::result::Result<Vec<Matcher>, String> {
        compile_matchers(
            &self.target_match,
            &self.target_match_re,
            &self.target_matchers,
        )
    }
}

/// A whole Alertmanager configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmConfig {
    #[serde(default)]
    pub global: GlobalConfig,
    /// Required: the root of the routing tree (validation refuses a file without one).
    #[serde(default)]
    pub route: Option<RouteConfig>,
    #[serde(default)]
    pub receivers: Vec<ReceiverConfig>,
    #[serde(default)]
    pub inhibit_rules: Vec<InhibitRuleConfig>,
    #[serde(default)]
    pub time_intervals: Vec<TimeIntervalConfig>,
    /// Deprecated form of `time_intervals`; both are usable by name.
    #[serde(default)]
    pub mute_time_intervals: Vec<TimeIntervalConfig>,
    /// Globs of notification template files, relative to the config file.
    #[serde(default)]
    pub templates: Vec<String>,
    /// Alertmanager's tracing section: read so that it can be refused by name.
    #[serde(default)]
    pub tracing: Option<serde_norway::Value>,
    /// The text this was parsed from, for `/api/v2/status`.
    #[serde(skip)]
    pub source: String,
    /// Things that load but do not do what the file may expect (templates, unsupported
    /// integrations, unknown global fields).
    #[serde(skip)]
    pub warnings: Vec<String>,
    /// The directory of the file this was read from: receivers' relative paths (credential
    /// files, `file_configs`, exec commands) resolve against it, as templates do, so an
    /// `alertmanager: {file: ...}` in another directory means what it meant to Alertmanager.
    /// None: the caller's directory (configs built in code).
    #[serde(skip)]
    pub base_dir: Option<std::path::PathBuf>,
}

impl Default for AmConfig {
    /// One receiver `default` without integrations, and a root route to it.
    fn default() -> Self {
        AmConfig {
            global: GlobalConfig::default(),
            route: Some(RouteConfig {
                receiver: "default".into(),
                ..RouteConfig::default()
            }),
            receivers: vec![ReceiverConfig {
                name: "default".into(),
                ..ReceiverConfig::default()
            }],
            inhibit_rules: Vec::new(),
            time_intervals: Vec::new(),
            mute_time_intervals: Vec::new(),
            templates: Vec::new(),
            tracing: None,
            base_dir: None,
            source: MINIMAL_CONFIG.to_string(),
            warnings: Vec::new(),
        }
    }
}

impl AmConfig {
    /// Parses and validates; every error of the file is in the one `Error::Config`, one per line.
    pub fn parse(text: &str, file: &str) -> Result<AmConfig> {
        Self::parse_section(text, file, "", text)
    }

    /// Parses the alert manager config found at `section` of `doc_text` (`""`: the whole text is
    /// an alertmanager.yml; `"alertmanager"`: the inline section of a tocsin.yml), so errors carry
    /// the line, column and path they have in that file. `own_text` is the section's own text
    /// (with the file's line numbers), kept for `/api/v2/status`.
    pub fn parse_section(
        doc_text: &str,
        file: &str,
        section: &str,
        own_text: &str,
    ) -> Result<AmConfig> {
        let mut doc = tocsin_confdiag::Doc::parse(doc_text, file)
            .map_err(|d| Error::Config(d.lines().join("\n")))?;
        let mut derrs = Vec::new();
        let parsed: Option<AmConfig> = doc.take(section, &mut derrs);
        let mut cfg = match parsed {
            Some(c) if derrs.is_empty() => c,
            _ => {
                return Err(Error::Config(
                    tocsin_confdiag::Diagnostics(derrs)
                        .sorted()
                        .lines()
                        .join("\n"),
                ))
            }
        };
        cfg.source = own_text.to_string();
        cfg.base_dir = Some(crate::config_receivers::base_dir_of(file).to_path_buf());
        let ctx_errs = crate::config_receivers::attach_ctx(
            &mut cfg,
            crate::config_receivers::base_dir_of(file),
        );
        let mut v = Validator {
            file,
            lines: LineIndex::new(own_text),
            index: doc.index().clone(),
            prefix: section.to_string(),
            errs: Vec::new(),
            warnings: Vec::new(),
        };
        for e in ctx_errs {
            v.errs.push(format!("{file}: {e}"));
        }
        v.check(&cfg);
        if !v.errs.is_empty() {
            return Err(Error::Config(v.errs.join("\n")));
        }
        for w in &v.warnings {
            tracing::warn!(file, "{w}");
        }
        cfg.warnings = v.warnings;
        Ok(cfg)
    }

    /// Reads and parses a file.
    pub fn load_file(path: &std::path::Path) -> Result<AmConfig> {
        let name = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Config(format!("reading {name}: {e}")))?;
        Self::parse(&text, &name)
    }

    pub fn resolve_timeout_ms(&self) -> i64 {
        self.global.resolve_timeout.0
    }

    /// Compiles `time_intervals` and `mute_time_intervals`.
    pub fn time_intervals(&self) -> Result<TimeIntervals> {
        TimeIntervals::compile(&[&self.time_intervals, &self.mute_time_intervals])
            .map_err(Error::Config)
    }

    pub fn receiver(&self, name: &str) -> Option<&ReceiverConfig> {
        self.receivers.iter().find(|r| r.name == name)
    }
}

/// Builds matchers from the deprecated `match`/`match_re` maps and a `matchers` list.
pub fn compile_matchers(
    eq: &BTreeMap<String, Scalar>,
    re: &BTreeMap<String, Scalar>,
    list: &[Scalar],
) -> std::result::Result<Vec<Matcher>, String> {
    let mut out = Vec::new();
    for (k, v) in eq {
        validate_label_name(k).map_err(|_| format!("invalid label name {k:?}"))?;
        out.push(Matcher::equal(k.clone(), v.0.clone()));
    }
    for (k, v) in re {
        validate_label_name(k).map_err(|_| format!("invalid label name {k:?}"))?;
        out.push(
            Matcher::new(MatchOp::Regex, k.clone(), v.0.clone())
                .map_err(|e| format!("invalid regex for {k:?}: {e}"))?,
        );
    }
    for s in list {
        out.extend(parse_matchers(&s.0)?);
    }
    Ok(out)
}

/// Where things are in the text, found by indentation (block-style YAML, as configs are written);
/// when the text is laid out some other way the lists come out short and messages fall back to a
/// path without a line.
struct LineIndex {
    /// Pre-order lines of route nodes: the root `route:` then every item under a `routes:` key.
    routes: Vec<usize>,
    receivers: Vec<usize>,
    inhibit_rules: Vec<usize>,
    time_intervals: Vec<usize>,
    mute_time_intervals: Vec<usize>,
    root_route: Option<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let root_route = text
            .lines()
            .position(|l| key_of(l) == Some((0, "route")))
            .map(|i| i + 1);
        let mut routes: Vec<usize> = root_route.into_iter().collect();
        routes.extend(list_item_lines(text, "routes", false));
        LineIndex {
            routes,
            receivers: list_item_lines(text, "receivers", true),
            inhibit_rules: list_item_lines(text, "inhibit_rules", true),
            time_intervals: list_item_lines(text, "time_intervals", true),
            mute_time_intervals: list_item_lines(text, "mute_time_intervals", true),
            root_route,
        }
    }
}

/// The key a line starts (after any `- `), with the column it is at, when its value is on the
/// following lines (`key:` alone, or followed by a comment).
fn key_of(line: &str) -> Option<(usize, &str)> {
    let mut rest = line;
    let mut col = 0;
    loop {
        let t = rest.trim_start();
        col += rest.len() - t.len();
        match t.strip_prefix('-') {
            Some(after) if after.is_empty() || after.starts_with(' ') => {
                col += 1;
                rest = after;
            }
            _ => {
                rest = t;
                break;
            }
        }
    }
    let (key, after) = rest.split_once(':')?;
    let after = after.trim();
    if key.is_empty() || key.contains(' ') || !(after.is_empty() || after.starts_with('#')) {
        return None;
    }
    Some((col, key))
}

fn is_item(trimmed: &str) -> bool {
    trimmed == "-" || trimmed.starts_with("- ")
}

/// Lines (1-based) of the list items directly under each `key:` (only at column 0 when
/// `top_level`), in file order; nested lists under the same key come in pre-order.
fn list_item_lines(text: &str, key: &str, top_level: bool) -> Vec<usize> {
    // Open `key:` blocks: (column of the key, column of its items once seen).
    let mut stack: Vec<(usize, Option<usize>)> = Vec::new();
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let t = line.trim_start();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        let indent = line.len() - t.len();
        let item = is_item(t);
        while let Some(&(kcol, icol)) = stack.last() {
            let ends = match icol {
                None => !(indent > kcol || (indent == kcol && item)),
                Some(ic) => indent < ic || (indent == ic && !item),
            };
            if ends {
                stack.pop();
            } else {
                break;
            }
        }
        if item {
            if let Some(top) = stack.last_mut() {
                if top.1.is_none() {
                    top.1 = Some(indent);
                }
                if top.1 == Some(indent) {
                    out.push(i + 1);
                }
            }
        }
        if let Some((col, k)) = key_of(line) {
            if k == key && (!top_level || col == 0) {
                stack.push((col, None));
            }
        }
    }
    out
}

struct Validator<'a> {
    file: &'a str,
    /// Line of list items by hand, for places the position index has no node for.
    lines: LineIndex,
    /// Positions of every node of the file.
    index: tocsin_confdiag::PosIndex,
    /// Path of the alert manager config in the file (`alertmanager` when inline).
    prefix: String,
    errs: Vec<String>,
    warnings: Vec<String>,
}

impl Validator<'_> {
    fn err(&mut self, line: Option<usize>, path: &str, msg: impl std::fmt::Display) {
        // One error per line: regex errors come with a multi-line caret diagram.
        let msg = msg
            .to_string()
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        let full = match (self.prefix.is_empty(), path.is_empty()) {
            (true, _) => path.to_string(),
            (false, true) => self.prefix.clone(),
            (false, false) => format!("{}.{path}", self.prefix),
        };
        let where_ = match (self.index.key(&full).or(self.index.value(&full)), line) {
            (Some(p), _) => format!("{}:{}:{}", self.file, p.line, p.col),
            (None, Some(l)) => format!("{}:{l}", self.file),
            (None, None) => match self.index.nearest(&full, true) {
                Some(p) => format!("{}:{}:{}", self.file, p.line, p.col),
                None => self.file.to_string(),
            },
        };
        if full.is_empty() {
            self.errs.push(format!("{where_}: {msg}"));
        } else {
            self.errs.push(format!("{where_}: {full}: {msg}"));
        }
    }

    fn check(&mut self, cfg: &AmConfig) {
        for k in cfg.global.other.keys() {
            if !KNOWN_GLOBAL_FIELDS.contains(&k.as_str()) {
                let mut known = vec!["resolve_timeout", "http_config"];
                known.extend_from_slice(KNOWN_GLOBAL_FIELDS);
                let msg = match tocsin_confdiag::did_you_mean(k, &known) {
                    Some(c) => format!("unknown field `{k}`, did you mean `{c}`?"),
                    None => format!("unknown field `{k}`"),
                };
                self.err(None, &format!("global.{k}"), msg);
            }
        }
        if cfg.tracing.as_ref().is_some_and(|v| !v.is_null()) {
            self.err(
                None,
                "tracing",
                "tracing is not implemented yet; remove the section",
            );
        }

        // Receivers: named, unique.
        let mut receivers = HashSet::new();
        for (i, r) in cfg.receivers.iter().enumerate() {
            let line = self.lines.receivers.get(i).copied();
            let path = format!("receivers[{i}]");
            if r.name.is_empty() {
                self.err(line, &path, "missing name in receiver");
            } else if !receivers.insert(r.name.as_str()) {
                self.err(
                    line,
                    &path,
                    format!("notification config name {:?} is not unique", r.name),
                );
            }
            for e in crate::config_receivers::receiver_errors(r) {
                self.err(line, &path, e);
            }
        }

        // Time intervals: named, unique across both lists, each spec valid.
        let mut intervals = HashSet::new();
        for (list, lines, what) in [
            (
                &cfg.mute_time_intervals,
                self.lines.mute_time_intervals.clone(),
                "mute_time_intervals",
            ),
            (
                &cfg.time_intervals,
                self.lines.time_intervals.clone(),
                "time_intervals",
            ),
        ] {
            for (i, ti) in list.iter().enumerate() {
                let line = lines.get(i).copied();
                let path = format!("{what}[{i}]");
                if ti.name.is_empty() {
                    self.err(line, &path, "missing name in time interval");
                    continue;
                }
                if !intervals.insert(ti.name.clone()) {
                    self.err(
                        line,
                        &path,
                        format!("time interval {:?} is not unique", ti.name),
                    );
                }
                for (j, spec) in ti.time_intervals.iter().enumerate() {
                    if let Err(e) = spec.compile() {
                        self.err(
                            line,
                            &format!("{path}.time_intervals[{j}]"),
                            format!("time interval {:?}: {e}", ti.name),
                        );
                    }
                }
            }
        }

        // The routing tree.
        match &cfg.route {
            None => self.err(None, "route", "no route provided"),
            Some(root) => {
                let line = self.lines.root_route;
                if root.receiver.is_empty() {
                    self.err(line, "route", "root route must specify a default receiver");
                }
                if !root.match_.is_empty() || !root.match_re.is_empty() || !root.matchers.is_empty()
                {
                    self.err(line, "route", "root route must not have any matchers");
                }
                if !root.mute_time_intervals.is_empty() {
                    self.err(
                        line,
                        "route",
                        "root route must not have any mute time intervals",
                    );
                }
                if !root.active_time_intervals.is_empty() {
                    self.err(
                        line,
                        "route",
                        "root route must not have any active time intervals",
                    );
                }
                let mut index = 0;
                let mut eff = Effective {
                    group_interval: DEFAULT_GROUP_INTERVAL_MS,
                    repeat_interval: DEFAULT_REPEAT_INTERVAL_MS,
                };
                self.check_route(root, "route", &mut index, &mut eff, &receivers, &intervals);
            }
        }

        // Inhibition rules.
        for (i, r) in cfg.inhibit_rules.iter().enumerate() {
            let line = self.lines.inhibit_rules.get(i).copied();
            let path = format!("inhibit_rules[{i}]");
            if let Err(e) = r.source() {
                self.err(line, &path, format!("source: {e}"));
            }
            if let Err(e) = r.target() {
                self.err(line, &path, format!("target: {e}"));
            }
            for n in &r.equal {
                if validate_label_name(n).is_err() {
                    self.err(line, &path, format!("equal: invalid label name {n:?}"));
                }
            }
        }
    }

    fn check_route(
        &mut self,
        r: &RouteConfig,
        path: &str,
        index: &mut usize,
        parent: &mut Effective,
        receivers: &HashSet<&str>,
        intervals: &HashSet<String>,
    ) {
        let line = self.lines.routes.get(*index).copied();
        *index += 1;
        if !r.receiver.is_empty() && !receivers.contains(r.receiver.as_str()) {
            self.err(
                line,
                path,
                format!("undefined receiver {:?} used in route", r.receiver),
            );
        }
        if let Some(g) = &r.group_by {
            let mut seen = BTreeSet::new();
            for l in g {
                if l == "..." {
                    if g.len() > 1 {
                        self.err(
                            line,
                            path,
                            "cannot have wildcard group_by (`...`) and other labels at the same time",
                        );
                    }
                } else if validate_label_name(l).is_err() {
                    self.err(line, path, format!("invalid label name {l:?} in group_by"));
                }
                if !seen.insert(l.as_str()) {
                    self.err(line, path, format!("duplicated label {l:?} in group_by"));
                }
            }
        }
        if let Err(e) = compile_matchers(&r.match_, &r.match_re, &r.matchers) {
            self.err(line, path, e);
        }
        if r.group_interval == Some(AmDuration(0)) {
            self.err(line, path, "group_interval cannot be zero");
        }
        if r.repeat_interval == Some(AmDuration(0)) {
            self.err(line, path, "repeat_interval cannot be zero");
        }
        for n in r.mute_time_intervals.iter().chain(&r.active_time_intervals) {
            if !intervals.contains(n) {
                self.err(
                    line,
                    path,
                    format!("undefined time interval {n:?} used in route"),
                );
            }
        }
        let mut eff = Effective {
            group_interval: r.group_interval.map_or(parent.group_interval, |d| d.0),
            repeat_interval: r.repeat_interval.map_or(parent.repeat_interval, |d| d.0),
        };
        if (r.group_interval.is_some() || r.repeat_interval.is_some())
            && eff.repeat_interval > 0
            && eff.repeat_interval < eff.group_interval
        {
            self.warnings.push(format!(
                "{path}: repeat_interval is less than group_interval; notifications will not repeat until the next group_interval"
            ));
        }
        for (i, c) in r.routes.iter().enumerate() {
            self.check_route(
                c,
                &format!("{path}.routes[{i}]"),
                index,
                &mut eff,
                receivers,
                intervals,
            );
        }
    }
}

/// The inherited timers while walking the tree, for the repeat/group interval warning.
struct Effective {
    group_interval: i64,
    repeat_interval: i64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;

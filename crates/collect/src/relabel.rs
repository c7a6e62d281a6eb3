//! Relabelling: the `relabel_config` YAML block (Prometheus's field names and defaults), its
//! validation, and `process`, which applies a list of rules to a label set in order.
//!
//! Semantics follow Prometheus's documentation. Where the documentation is silent we follow its
//! observable behaviour: regexes are RE2-style, anchored at both ends, with `.` matching newlines;
//! `$` references in `replacement` and `target_label` expand as Go's `Regexp.Expand` does; label
//! names are checked against the legacy charset `[a-zA-Z_][a-zA-Z0-9_]*`.

use std::fmt;

use md5::{Digest, Md5};
use serde::{Deserialize, Deserializer};
use tocsin_model::labels::validate_label_name;
use tocsin_model::LabelsBuilder;

/// What a rule does; YAML accepts any letter case (`labelmap`, `LabelMap`), as Prometheus does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Action {
    #[default]
    Replace,
    Keep,
    Drop,
    KeepEqual,
    DropEqual,
    HashMod,
    LabelMap,
    LabelDrop,
    LabelKeep,
    Lowercase,
    Uppercase,
}

impl Action {
    const ALL: [Action; 11] = [
        Action::Replace,
        Action::Keep,
        Action::Drop,
        Action::KeepEqual,
        Action::DropEqual,
        Action::HashMod,
        Action::LabelMap,
        Action::LabelDrop,
        Action::LabelKeep,
        Action::Lowercase,
        Action::Uppercase,
    ];

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Replace => "replace",
            Action::Keep => "keep",
            Action::Drop => "drop",
            Action::KeepEqual => "keepequal",
            Action::DropEqual => "dropequal",
            Action::HashMod => "hashmod",
            Action::LabelMap => "labelmap",
            Action::LabelDrop => "labeldrop",
            Action::LabelKeep => "labelkeep",
            Action::Lowercase => "lowercase",
            Action::Uppercase => "uppercase",
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Action {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let lower = s.to_ascii_lowercase();
        Action::ALL
            .into_iter()
            .find(|a| a.as_str() == lower)
            .ok_or_else(|| {
                let names: Vec<&str> = Action::ALL.iter().map(|a| a.as_str()).collect();
                format!(
                    "unknown relabel action {s:?} (expected one of {})",
                    names.join(", ")
                )
            })
    }
}

impl<'de> Deserialize<'de> for Action {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A relabelling regex: keeps the text as written (for messages and comparisons with the
/// default) and the compiled, fully anchored form.
#[derive(Clone)]
pub struct Regex {
    source: String,
    re: regex::Regex,
}

/// The default `regex` of a rule.
pub const DEFAULT_REGEX: &str = "(.*)";
/// The default `separator` of a rule.
pub const DEFAULT_SEPARATOR: &str = ";";
/// The default `replacement` of a rule.
pub const DEFAULT_REPLACEMENT: &str = "$1";

impl Regex {
    /// Compiles `source` anchored at both ends. `(?s)` because Prometheus lets `.` match a
    /// newline inside label values; a user pattern without it would otherwise silently miss them.
    pub fn new(source: &str) -> Result<Self, String> {
        regex::Regex::new(&format!("^(?s:{source})$"))
            .map(|re| Self {
                source: source.to_string(),
                re,
            })
            .map_err(|e| format!("invalid regex {source:?}: {e}"))
    }
    /// The pattern as written in the configuration, without the anchors.
    pub fn as_str(&self) -> &str {
        &self.source
    }
    pub fn is_match(&self, s: &str) -> bool {
        self.re.is_match(s)
    }
}

impl Default for Regex {
    fn default() -> Self {
        // The pattern is a literal that always compiles; a test covers this arm.
        match Regex::new(DEFAULT_REGEX) {
            Ok(r) => r,
            Err(_) => unreachable!("the default relabel regex is a valid literal"),
        }
    }
}

impl PartialEq for Regex {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl fmt::Debug for Regex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Regex({:?})", self.source)
    }
}

impl<'de> Deserialize<'de> for Regex {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Regex::new(&s).map_err(serde::de::Error::custom)
    }
}

/// One `relabel_config` entry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelabelConfig {
    pub source_labels: Vec<String>,
    pub separator: String,
    pub target_label: String,
    pub regex: Regex,
    pub modulus: u64,
    pub replacement: String,
    pub action: Action,
}

impl Default for RelabelConfig {
    fn default() -> Self {
        Self {
            source_labels: Vec::new(),
            separator: DEFAULT_SEPARATOR.to_string(),
            target_label: String::new(),
            regex: Regex::default(),
            modulus: 0,
            replacement: DEFAULT_REPLACEMENT.to_string(),
            action: Action::Replace,
        }
    }
}

/// Whether `s` is a label name possibly built from `$` references: every piece is a legal
/// name start or a reference (`$1`, `$name`, `${name}`), followed by word characters.
fn is_name_template(s: &str) -> bool {
    static PAT: &str = r"^(?:(?:[a-zA-Z_]|\$(?:\{[0-9A-Za-z_]+\}|[0-9A-Za-z_]+))+[0-9A-Za-z_]*)+$";
    // Compiled per call: validation runs once per config load, never on the hot path.
    regex::Regex::new(PAT).is_ok_and(|re| re.is_match(s))
}

impl RelabelConfig {
    /// Checks the combination of fields against what the action needs, as Prometheus does when
    /// it loads a configuration. The message names the action and the offending field.
    pub fn validate(&self) -> Result<(), String> {
        let a = self.action;
        for name in &self.source_labels {
            validate_label_name(name)
                .map_err(|e| format!("invalid 'source_labels' entry {name:?}: {e}"))?;
        }
        if a == Action::HashMod && self.modulus == 0 {
            return Err(
                "relabel configuration for hashmod action requires non-zero 'modulus'".into(),
            );
        }
        let needs_target = matches!(
            a,
            Action::Replace
                | Action::HashMod
                | Action::Lowercase
                | Action::Uppercase
                | Action::KeepEqual
                | Action::DropEqual
        );
        if needs_target && self.target_label.is_empty() {
            return Err(format!(
                "relabel configuration for {a} action requires 'target_label' value"
            ));
        }
        let invalid_target = || {
            format!(
                "{:?} is invalid 'target_label' for {a} action",
                self.target_label
            )
        };
        match a {
            Action::Replace if !is_name_template(&self.target_label) => {
                return Err(invalid_target())
            }
            Action::HashMod
            | Action::Lowercase
            | Action::Uppercase
            | Action::KeepEqual
            | Action::DropEqual
                if validate_label_name(&self.target_label).is_err() =>
            {
                return Err(invalid_target())
            }
            _ => {}
        }
        if matches!(a, Action::Lowercase | Action::Uppercase)
            && self.replacement != DEFAULT_REPLACEMENT
        {
            return Err(format!("'replacement' can not be set for {a} action"));
        }
        if a == Action::LabelMap && !is_name_template(&self.replacement) {
            return Err(format!(
                "{:?} is invalid 'replacement' for {a} action",
                self.replacement
            ));
        }
        if matches!(a, Action::KeepEqual | Action::DropEqual)
            && (self.regex.as_str() != DEFAULT_REGEX
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'source_labels' and 'target_label', and no other fields"
            ));
        }
        if matches!(a, Action::LabelDrop | Action::LabelKeep)
            && (!self.source_labels.is_empty()
                || !self.target_label.is_empty()
                || self.modulus != 0
                || self.separator != DEFAULT_SEPARATOR
                || self.replacement != DEFAULT_REPLACEMENT)
        {
            return Err(format!(
                "{a} action requires only 'regex', and no other fields"
            ));
        }
        Ok(())
    }
}

/// Applies `cfgs` in order to `lb`. Returns false as soon as a rule drops the label set; `lb` is
/// then left part-way and should be discarded.
pub fn process(lb: &mut LabelsBuilder, cfgs: &[RelabelConfig]) -> bool {
    cfgs.iter().all(|c| apply(lb, c))
}

fn apply(lb: &mut LabelsBuilder, c: &RelabelConfig) -> bool {
    let mut val = String::new();
    for (i, name) in c.source_labels.iter().enumerate() {
        if i > 0 {
            val.push_str(&c.separator);
        }
        val.push_str(lb.get(name).unwrap_or(""));
    }
    let target_value = || lb.get(&c.target_label).unwrap_or("");
    match c.action {
        Action::Keep => return c.regex.is_match(&val),
        Action::Drop => return !c.regex.is_match(&val),
        Action::KeepEqual => return target_value() == val,
        Action::DropEqual => return target_value() != val,
        Action::Replace => {
            let Some(caps) = c.regex.re.captures(&val) else {
                return true;
            };
            let mut target = String::new();
            expand(&c.target_label, &caps, &mut target);
            if validate_label_name(&target).is_err() {
                return true;
            }
            let mut res = String::new();
            expand(&c.replacement, &caps, &mut res);
            set_or_del(lb, &target, &res);
        }
        Action::Lowercase => set_or_del(lb, &c.target_label, &val.to_lowercase()),
        Action::Uppercase => set_or_del(lb, &c.target_label, &val.to_uppercase()),
        Action::HashMod => {
            let digest = Md5::digest(val.as_bytes());
            // The low half of the digest, big-endian: what Prometheus shards on, so a target
            // lands on the same shard here as it would there.
            let mut low = [0u8; 8];
            low.copy_from_slice(&digest[8..16]);
            let m = u64::from_be_bytes(low) % c.modulus.max(1);
            lb.set(&c.target_label, &m.to_string());
        }
        Action::LabelMap => {
            // A snapshot, so labels written by this rule are not themselves mapped again.
            let snapshot: Vec<(String, String)> = lb
                .iter()
                .map(|l| (l.name.clone(), l.value.clone()))
                .collect();
            for (name, value) in snapshot {
                if let Some(caps) = c.regex.re.captures(&name) {
                    let mut new_name = String::new();
                    expand(&c.replacement, &caps, &mut new_name);
                    lb.set(&new_name, &value);
                }
            }
        }
        Action::LabelDrop => {
            lb.retain(|l| !c.regex.is_match(&l.name));
        }
        Action::LabelKeep => {
            lb.retain(|l| c.regex.is_match(&l.name));
        }
    }
    true
}

/// An empty value means "no such label" throughout Prometheus, so setting one deletes.
fn set_or_del(lb: &mut LabelsBuilder, name: &str, value: &str) {
    if value.is_empty() {
        lb.del(name);
    } else {
        lb.set(name, value);
    }
}

/// Appends `template` to `out` with `$` references replaced, exactly as Go's `Regexp.Expand`:
/// `$$` is a dollar; `$name` takes the longest run of letters, digits and `_` as the name (so
/// `$1x` names a group `1x`, usually empty); `${name}` delimits it; a name of digits without a
/// leading zero is a group number; an unknown group or one that did not take part is empty; a `$`
/// not followed by a well-formed reference is kept literally.
fn expand(template: &str, caps: &regex::Captures<'_>, out: &mut String) {
    let mut rest = template;
    while let Some(pos) = rest.find('$') {
        out.push_str(&rest[..pos]);
        rest = &rest[pos + 1..];
        if let Some(r) = rest.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        match parse_ref(rest) {
            Some((name, after)) => {
                rest = after;
                let m = match group_number(name) {
                    Some(n) => caps.get(n),
                    None => caps.name(name),
                };
                if let Some(m) = m {
                    out.push_str(m.as_str());
                }
            }
            None => out.push('$'),
        }
    }
    out.push_str(rest);
}

/// Parses the reference after a `$`: returns the name and the text after the reference.
fn parse_ref(s: &str) -> Option<(&str, &str)> {
    let (body, braced) = match s.strip_prefix('{') {
        Some(b) => (b, true),
        None => (s, false),
    };
    let end = body
        .char_indices()
        .find(|&(_, c)| !(c.is_alphabetic() || c.is_numeric() || c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    let after = &body[end..];
    if braced {
        let after = after.strip_prefix('}')?;
        Some((name, after))
    } else {
        Some((name, after))
    }
}

/// A group number as Go reads one: ASCII digits, at most nine of them, no leading zero (except `0`).
fn group_number(name: &str) -> Option<usize> {
    if !name.bytes().all(|b| b.is_ascii_digit()) || name.len() > 9 {
        return None;
    }
    if name.len() > 1 && name.starts_with('0') {
        return None;
    }
    name.parse().ok()
}

#[cfg(test)]
mod tests;

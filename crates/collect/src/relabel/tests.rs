//! Tests for relabelling: the data-driven corpus in `testdata/relabel` (one case per file) and
//! `testdata/relabel_invalid` (configurations that must be rejected), plus a few unit checks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::*;
use tocsin_model::Labels;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    config: Vec<RelabelConfig>,
    input: BTreeMap<String, String>,
    #[serde(default)]
    output: Option<BTreeMap<String, String>>,
    #[serde(default)]
    dropped: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct InvalidCase {
    #[serde(default)]
    #[allow(dead_code)]
    description: String,
    /// Kept as raw YAML so that parse errors are part of what is tested.
    config: serde_norway::Value,
    /// A substring the error message must contain.
    error: String,
}

fn case_files(dir: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("testdata")
        .join(dir);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "yml"))
        .collect();
    files.sort();
    files
}

fn to_labels(m: &BTreeMap<String, String>) -> Labels {
    let pairs: Vec<(&str, &str)> = m.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    Labels::from_pairs(&pairs)
}

#[test]
fn corpus() {
    let files = case_files("relabel");
    assert!(files.len() >= 30, "only {} relabel cases", files.len());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let case: Case = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: bad case file: {e}", f.display()));
        assert!(
            case.dropped != case.output.is_some(),
            "{}: give exactly one of `output` and `dropped: true`",
            f.display()
        );
        for (i, c) in case.config.iter().enumerate() {
            if let Err(e) = c.validate() {
                panic!("{}: config {i} does not validate: {e}", f.display());
            }
        }
        let mut lb = LabelsBuilder::from(&to_labels(&case.input));
        let kept = process(&mut lb, &case.config);
        let got = kept.then(|| lb.build());
        let want = case.output.as_ref().map(to_labels);
        if got != want {
            failures.push(format!(
                "{}: want {want:?}, got {got:?}",
                f.file_name().unwrap().to_string_lossy()
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn invalid_corpus() {
    let files = case_files("relabel_invalid");
    assert!(!files.is_empty());
    let mut failures = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        let case: InvalidCase = serde_norway::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: bad case file: {e}", f.display()));
        let err = match serde_norway::from_value::<Vec<RelabelConfig>>(case.config) {
            Err(e) => e.to_string(),
            Ok(cfgs) => match cfgs.iter().find_map(|c| c.validate().err()) {
                Some(e) => e,
                None => {
                    failures.push(format!("{}: accepted", f.display()));
                    continue;
                }
            },
        };
        if !err.contains(&case.error) {
            failures.push(format!(
                "{}: error {err:?} does not contain {:?}",
                f.display(),
                case.error
            ));
        }
    }
    assert!(failures.is_empty(), "\n{}", failures.join("\n"));
}

#[test]
fn defaults_match_prometheus() {
    let c: RelabelConfig = serde_norway::from_str("target_label: x").unwrap();
    assert_eq!(c.separator, ";");
    assert_eq!(c.regex.as_str(), "(.*)");
    assert_eq!(c.regex, Regex::new("(.*)").unwrap());
    assert_eq!(c.replacement, "$1");
    assert_eq!(c.action, Action::Replace);
    assert_eq!(c.modulus, 0);
    assert!(c.validate().is_ok());
}

#[test]
fn regex_is_anchored_and_dot_matches_newline() {
    let r = Regex::new("b+").unwrap();
    assert!(r.is_match("bb"));
    assert!(!r.is_match("abb"));
    assert!(!r.is_match("bba"));
    assert!(Regex::new("a.b").unwrap().is_match("a\nb"));
    // An alternation must not escape the anchors.
    let r = Regex::new("a|b").unwrap();
    assert!(!r.is_match("ab"));
}

fn expand_str(re: &str, input: &str, template: &str) -> String {
    let r = Regex::new(re).unwrap();
    let caps = r.re.captures(input).unwrap();
    let mut out = String::new();
    expand(template, &caps, &mut out);
    out
}

#[test]
fn expand_follows_go() {
    let re = "(?P<first>a+)(b+)";
    assert_eq!(expand_str(re, "aabb", "$1-$2"), "aa-bb");
    assert_eq!(expand_str(re, "aabb", "${1}x"), "aax");
    assert_eq!(expand_str(re, "aabb", "$1x"), "");
    assert_eq!(expand_str(re, "aabb", "$first.$2"), "aa.bb");
    assert_eq!(expand_str(re, "aabb", "${first}_"), "aa_");
    assert_eq!(expand_str(re, "aabb", "$first_"), "");
    assert_eq!(expand_str(re, "aabb", "$$1"), "$1");
    assert_eq!(expand_str(re, "aabb", "$"), "$");
    assert_eq!(expand_str(re, "aabb", "a$-b"), "a$-b");
    assert_eq!(expand_str(re, "aabb", "${1"), "${1");
    assert_eq!(expand_str(re, "aabb", "${}"), "${}");
    assert_eq!(expand_str(re, "aabb", "${1-}"), "${1-}");
    assert_eq!(expand_str(re, "aabb", "$01"), "");
    assert_eq!(expand_str(re, "aabb", "$0"), "aabb");
    assert_eq!(expand_str(re, "aabb", "$9"), "");
    assert_eq!(expand_str(re, "aabb", "$nosuch"), "");
}

#[test]
fn hashmod_known_values() {
    // md5("baz") = 73feffa4b7f6bb68 e44cf984c85f6e88; 0xe44cf984c85f6e88 % 1000 = 976, the value
    // Prometheus's own tests expect for this input.
    let cfg = RelabelConfig {
        source_labels: vec!["c".into()],
        target_label: "d".into(),
        modulus: 1000,
        action: Action::HashMod,
        ..RelabelConfig::default()
    };
    let mut lb = LabelsBuilder::from(&Labels::from_pairs(&[("c", "baz")]));
    assert!(process(&mut lb, std::slice::from_ref(&cfg)));
    assert_eq!(lb.get("d"), Some("976"));
}

#[test]
fn action_parse_is_case_insensitive() {
    assert_eq!("LabelMap".parse::<Action>(), Ok(Action::LabelMap));
    assert_eq!("KEEPEQUAL".parse::<Action>(), Ok(Action::KeepEqual));
    assert!("nope".parse::<Action>().is_err());
}

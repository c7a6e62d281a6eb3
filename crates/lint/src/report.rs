//! The per-rule report (ok / failed / skipped per resource) and the results of a run.

use crate::rule::RuleMeta;

/// What a rule looked at: a name users recognise (`alert HighCpu`, `route 3`), and where it is
/// written when known (for SARIF and terminal locations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub file: Option<String>,
    /// 1-based.
    pub line: Option<usize>,
    /// 1-based column of `line`, when known (configuration settings).
    pub col: Option<usize>,
}

impl Resource {
    pub fn new(name: impl Into<String>) -> Resource {
        Resource {
            name: name.into(),
            file: None,
            line: None,
            col: None,
        }
    }

    pub fn at(name: impl Into<String>, file: &str, line: usize) -> Resource {
        Resource {
            name: name.into(),
            file: Some(file.to_string()),
            line: (line > 0).then_some(line),
            col: None,
        }
    }
}

impl Resource {
    /// The same resource, located in `file` (no line).
    pub fn with_file(mut self, file: &str) -> Resource {
        self.file = Some(file.to_string());
        self
    }
}

impl From<&str> for Resource {
    fn from(s: &str) -> Resource {
        Resource::new(s)
    }
}

impl From<String> for Resource {
    fn from(s: String) -> Resource {
        Resource::new(s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Ok,
    Failed,
    Skipped,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Failed => "failed",
            Outcome::Skipped => "skipped",
        }
    }
}

#[derive(Debug, Clone)]
pub struct Entry {
    pub resource: Resource,
    pub outcome: Outcome,
    /// Why it failed or was skipped; empty for ok.
    pub reason: String,
}

/// Collects one rule's findings.
#[derive(Debug, Default)]
pub struct Report {
    entries: Vec<Entry>,
}

impl Report {
    pub fn ok(&mut self, resource: impl Into<Resource>) {
        self.push(resource.into(), Outcome::Ok, String::new());
    }

    pub fn failed(&mut self, resource: impl Into<Resource>, reason: impl Into<String>) {
        self.push(resource.into(), Outcome::Failed, reason.into());
    }

    pub fn skipped(&mut self, resource: impl Into<Resource>, reason: impl Into<String>) {
        self.push(resource.into(), Outcome::Skipped, reason.into());
    }

    fn push(&mut self, resource: Resource, outcome: Outcome, reason: String) {
        self.entries.push(Entry {
            resource,
            outcome,
            reason,
        });
    }

    pub fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

/// One rule's outcome in a run.
#[derive(Debug)]
pub struct RuleResult {
    pub meta: &'static RuleMeta,
    pub entries: Vec<Entry>,
}

impl RuleResult {
    pub fn failed(&self) -> usize {
        self.count(Outcome::Failed)
    }

    pub fn count(&self, o: Outcome) -> usize {
        self.entries.iter().filter(|e| e.outcome == o).count()
    }
}

//! Where a configuration setting is written (file, line, column), by its path in the YAML tree
//! (`scrape_configs[1].scrape_timeout`, `route.routes[0]`), so findings about the configuration
//! carry a location the terminal prints and code hosts annotate. The alert manager's settings are
//! looked up in the file that holds them: a separate alertmanager file, or tocsin.yml's
//! `alertmanager:` section.

use tocsin_confdiag::PosIndex;

use crate::queries::config_yaml::ConfigFile;
use crate::report::Resource;

/// A located resource's file, line and column.
pub struct Located {
    pub file: String,
    pub line: usize,
    pub col: usize,
}

pub struct Positions<'a> {
    files: Vec<(&'a ConfigFile, PosIndex)>,
}

impl<'a> Positions<'a> {
    pub fn new(files: &'a [ConfigFile]) -> Positions<'a> {
        Positions {
            files: files
                .iter()
                .map(|f| (f, PosIndex::build(&f.text)))
                .collect(),
        }
    }

    /// `path` in the main configuration file (the first one).
    pub fn config(&self, path: &str) -> Option<Located> {
        let (f, idx) = self.files.first()?;
        let p = idx.nearest(path, true)?;
        Some(Located {
            file: f.file.clone(),
            line: p.line,
            col: p.col,
        })
    }

    /// `path` of the alert manager's configuration (`route.routes[0]`, `inhibit_rules[2]`).
    pub fn alertmanager(&self, path: &str) -> Option<Located> {
        // A file whose top level is an alert manager configuration wins over tocsin.yml's
        // `alertmanager:` section (which then only names that file).
        let am_file = self.files.iter().find(|(f, _)| {
            f.tree.as_ref().is_ok_and(|t| {
                ["route", "receivers", "inhibit_rules", "time_intervals"]
                    .iter()
                    .any(|k| t.get(k).is_some())
            })
        });
        let (f, idx, full) = match am_file {
            Some((f, idx)) => (f, idx, path.to_string()),
            None => {
                let (f, idx) = self.files.first()?;
                (f, idx, format!("alertmanager.{path}"))
            }
        };
        let p = idx.nearest(&full, true)?;
        Some(Located {
            file: f.file.clone(),
            line: p.line,
            col: p.col,
        })
    }
}

impl Located {
    /// A resource named `name` at this place.
    pub fn resource(self, name: impl Into<String>) -> Resource {
        let mut r = Resource::at(name, &self.file, self.line);
        r.col = Some(self.col);
        r
    }
}

/// `name` located when the place is known, else unlocated.
pub fn resource(name: impl Into<String>, at: Option<Located>) -> Resource {
    match at {
        Some(l) => l.resource(name),
        None => Resource::new(name),
    }
}

//! The inputs of a lint run and the cached query modules over them. A rule asks the context
//! (`ctx.rule_files()`, `ctx.routing()`); the first ask reads and parses, later ones share the
//! result. [`Context::prefetch`] asks every query module at once on its own thread, so the run
//! costs what its slowest query costs.

use std::path::PathBuf;
use std::sync::OnceLock;

use tocsin_alerts::AmConfig;

use crate::live::Live;
use crate::queries::live_rules::LiveRules;
use crate::queries::live_server::LiveServer;
use crate::queries::suppress::Suppressions;
use crate::queries::{config_yaml::ConfigFile, routing::Routing, rule_files::RuleFiles};
use crate::settings::LintConfig;

/// The loaded configuration pieces lint looks at.
pub struct Inputs {
    /// The built-in alert manager's configuration; None when alerts go to an external
    /// Alertmanager (rules about routing are then skipped).
    pub alertmanager: Option<AmConfig>,
    /// Rule files, already expanded from the config's globs.
    pub rule_files: Vec<PathBuf>,
    /// `global.evaluation_interval`, the interval of groups that set none.
    pub evaluation_interval_ms: i64,
    /// `global.scrape_interval`.
    pub scrape_interval_ms: i64,
    /// Remediation action policies (`actions:`).
    pub actions: tocsin_actions::ActionsConfig,
    /// The configuration files' text as (file, text): tocsin.yml and, when the
    /// `alertmanager:` section names one, the alertmanager file.
    pub config_texts: Vec<(String, String)>,
    /// A live source (server or data directory) for live rules; None runs offline rules only.
    pub live: Option<Live>,
    /// The `lint:` section: limits of the live rules.
    pub settings: LintConfig,
}

impl Default for Inputs {
    fn default() -> Self {
        Inputs {
            alertmanager: None,
            rule_files: Vec::new(),
            evaluation_interval_ms: 60_000,
            scrape_interval_ms: 60_000,
            actions: tocsin_actions::ActionsConfig::default(),
            config_texts: Vec::new(),
            live: None,
            settings: LintConfig::default(),
        }
    }
}

pub struct Context {
    pub inputs: Inputs,
    rule_files: OnceLock<RuleFiles>,
    routing: OnceLock<Option<Routing>>,
    config_files: OnceLock<Vec<ConfigFile>>,
    suppressions: OnceLock<Suppressions>,
    live_rules: OnceLock<Option<LiveRules>>,
    live_server: OnceLock<Option<LiveServer>>,
    config_load: OnceLock<crate::queries::config_load::ConfigLoad>,
    metadata: OnceLock<crate::queries::metadata::Metadata>,
    source_texts: OnceLock<crate::queries::source_text::SourceTexts>,
}

impl Context {
    pub fn new(inputs: Inputs) -> Context {
        Context {
            inputs,
            rule_files: OnceLock::new(),
            routing: OnceLock::new(),
            config_files: OnceLock::new(),
            suppressions: OnceLock::new(),
            live_rules: OnceLock::new(),
            live_server: OnceLock::new(),
            config_load: OnceLock::new(),
            metadata: OnceLock::new(),
            source_texts: OnceLock::new(),
        }
    }

    /// Every rule file read and every expression parsed, with what failed to load.
    pub fn rule_files(&self) -> &RuleFiles {
        self.rule_files
            .get_or_init(|| RuleFiles::load(&self.inputs.rule_files))
    }

    /// The built-in alert manager's routing; None when there is none.
    pub fn routing(&self) -> Option<&Routing> {
        self.routing
            .get_or_init(|| self.inputs.alertmanager.as_ref().map(Routing::build))
            .as_ref()
    }

    /// The configuration files as YAML trees.
    pub fn config_files(&self) -> &[ConfigFile] {
        self.config_files.get_or_init(|| {
            self.inputs
                .config_texts
                .iter()
                .map(|(f, t)| ConfigFile::parse(f, t))
                .collect()
        })
    }

    /// `# tocsin lint ignore|snooze` comments of the rule files.
    pub fn suppressions(&self) -> &Suppressions {
        self.suppressions
            .get_or_init(|| Suppressions::load(&self.inputs.rule_files))
    }

    /// What the live data says about the rules' selectors; None without a live source.
    pub fn live_rules(&self) -> Option<&LiveRules> {
        self.live_rules
            .get_or_init(|| {
                let live = self.inputs.live.as_ref()?;
                Some(LiveRules::load(
                    self.rule_files(),
                    live,
                    &self.inputs.settings,
                ))
            })
            .as_ref()
    }

    /// What the server says about itself; None without a live source.
    pub fn live_server(&self) -> Option<&LiveServer> {
        self.live_server
            .get_or_init(|| {
                let live = self.inputs.live.as_ref()?;
                Some(LiveServer::load(live, &self.inputs.settings))
            })
            .as_ref()
    }

    /// Runs every query module in parallel so the rules then find their data cached.
    pub fn prefetch(&self) {
        self.prefetch_with(|_| {});
    }

    /// [`Context::prefetch`], calling `done(name)` as each query module finishes (from its
    /// thread), e.g. to tick a progress bar.
    pub fn prefetch_with(&self, done: impl Fn(&'static str) + Sync) {
        let done = &done;
        std::thread::scope(|s| {
            s.spawn(|| {
                self.rule_files();
                done("rule files");
            });
            s.spawn(|| {
                self.routing();
                done("routing");
            });
            s.spawn(|| {
                self.config_files();
                done("configuration files");
            });
            s.spawn(|| {
                self.suppressions();
                done("suppressions");
            });
            s.spawn(|| {
                self.metadata();
                done("metric metadata");
            });
            s.spawn(|| {
                self.source_texts();
                done("source texts");
            });
            s.spawn(|| {
                self.live_rules();
                done("live questions about rules");
            });
            s.spawn(|| {
                self.live_server();
                done("live questions about the server");
            });
        });
    }

    /// How many query modules [`Context::prefetch_with`] reports.
    pub const PREFETCH_MODULES: u64 = 8;

    /// Records the server loader's verdict on the configuration (the caller runs the loader).
    /// Only the first call counts.
    pub fn set_config_load(&self, load: crate::queries::config_load::ConfigLoad) {
        let _ = self.config_load.set(load);
    }

    /// The server loader's verdict, `NotChecked` unless the caller set it.
    pub fn config_load(&self) -> &crate::queries::config_load::ConfigLoad {
        self.config_load.get_or_init(Default::default)
    }

    /// The texts findings point into, for columns.
    pub fn source_texts(&self) -> &crate::queries::source_text::SourceTexts {
        self.source_texts.get_or_init(|| {
            crate::queries::source_text::SourceTexts::load(
                &self.inputs.rule_files,
                &self.inputs.config_texts,
            )
        })
    }

    /// Declared metric types; empty offline (rules then go by naming conventions).
    pub fn metadata(&self) -> &crate::queries::metadata::Metadata {
        self.metadata
            .get_or_init(crate::queries::metadata::Metadata::offline)
    }
}

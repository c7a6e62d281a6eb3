//! `tocsin lint`: loads the configuration with the server's own parser (as `tocsin check config`
//! does), hands the pieces and the loader's verdict to `tocsin-lint` (a configuration the server
//! refuses is a failing config/ERR/002, linted on what parsed), prints the results and picks the
//! exit code: 0 nothing failed, 1 an ERR or SEC rule failed, 2 lint could not run.

use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use tocsin_confdiag::Diagnostic;
use tocsin_lint::queries::config_load::ConfigLoad;
use tocsin_lint::{output, registry, select, Context, Inputs};
use tocsin_server::config::Error as ConfigError;

#[derive(Clone, Copy, ValueEnum)]
pub enum Format {
    Terminal,
    Json,
    Sarif,
    Html,
}

#[derive(Args)]
pub struct LintArgs {
    /// The configuration to lint, with the rule files it names.
    #[arg(long, default_value = "tocsin.yml")]
    config: PathBuf,
    /// Run only rules whose id matches (an id or a glob such as `rules/*`, `*/ERR/*`); repeatable.
    #[arg(long)]
    include: Vec<String>,
    /// Do not run rules whose id matches; repeatable.
    #[arg(long)]
    exclude: Vec<String>,
    /// Print only failures (terminal output).
    #[arg(long)]
    hide_ok: bool,
    /// Also print what was skipped and why (terminal output).
    #[arg(long)]
    show_skipped: bool,
    #[arg(long, value_enum, default_value = "terminal")]
    output: Format,
}

pub fn run(a: LintArgs) -> ExitCode {
    match lint(a) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: lint could not run: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn lint(a: LintArgs) -> anyhow::Result<u8> {
    let rules = select::select(registry::ALL, &a.include, &a.exclude);
    if rules.is_empty() {
        bail!("--include/--exclude leave no rule to run");
    }
    let file = a.config.display().to_string();
    let base = tocsin_server::config_dir(Some(&a.config));
    let ctx = match tocsin_server::Config::load_file(&a.config) {
        Ok(cfg) => {
            let ctx = Context::new(loaded_inputs(&cfg, &a.config, &base)?);
            ctx.set_config_load(ConfigLoad::Loaded { file });
            ctx
        }
        // Nothing to lint without the file itself.
        Err(e @ ConfigError::Read { .. }) => {
            return Err(anyhow::anyhow!("{e}")).with_context(|| format!("loading {file}"))
        }
        Err(e) => {
            let problems = match e {
                ConfigError::Diagnostics(d) => d.0,
                ConfigError::Invalid {
                    file,
                    field,
                    message,
                } => vec![Diagnostic::new(&file, None, &field, message)],
                other => vec![Diagnostic::new(&file, None, "", other.to_string())],
            };
            let text =
                std::fs::read_to_string(&a.config).with_context(|| format!("reading {file}"))?;
            let ctx = Context::new(refused_inputs(&text, &a.config, &base));
            ctx.set_config_load(ConfigLoad::Refused { file, problems });
            ctx
        }
    };
    prefetch(&ctx);
    let results = tocsin_lint::run(&ctx, &rules);
    match a.output {
        Format::Terminal => {
            let view = output::View {
                hide_ok: a.hide_ok,
                show_skipped: a.show_skipped,
                color: std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
            };
            print!("{}", output::terminal::render(&results, view));
        }
        Format::Json => println!("{:#}", output::json::render(&results)),
        Format::Sarif => println!("{:#}", output::sarif::render(&results)),
        Format::Html => print!("{}", output::html::render(&results)),
    }
    Ok(tocsin_lint::exit_code(&results))
}

/// Runs the query modules, with a progress bar on stderr when it is a terminal (never in pipes,
/// files or CI logs), ticking as each module finishes; `run` then finds everything cached.
fn prefetch(ctx: &Context) {
    if !std::io::stderr().is_terminal() {
        ctx.prefetch();
        return;
    }
    let bar = ProgressBar::with_draw_target(
        Some(Context::PREFETCH_MODULES),
        ProgressDrawTarget::stderr(),
    );
    // A template with nothing but known keys always parses; the default is only a fallback.
    let style = ProgressStyle::with_template("{spinner} prefetching [{bar:30}] {pos}/{len} {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    bar.set_style(style);
    bar.set_message("query modules");
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    ctx.prefetch_with(|name| {
        bar.set_message(name);
        bar.inc(1);
    });
    bar.finish_and_clear();
}

/// The pieces of a configuration the server loaded.
fn loaded_inputs(cfg: &tocsin_server::Config, path: &Path, base: &Path) -> anyhow::Result<Inputs> {
    let rule_files = tocsin_server::alerting::rule_file_paths(&cfg.rule_files, base)
        .map_err(|e| anyhow::anyhow!("rule_files: {e}"))?;
    let mut config_texts = vec![(path.display().to_string(), cfg.source.clone())];
    // `alertmanager: {file: F}`: the alert manager kept the text it parsed.
    if let Some(f) = cfg
        .alertmanager
        .as_ref()
        .and_then(|v| v.get("file"))
        .and_then(|v| v.as_str())
    {
        config_texts.push((base.join(f).display().to_string(), cfg.am.source.clone()));
    }
    Ok(Inputs {
        // Without an `alertmanager:` section alerts go to external Alertmanagers lint cannot see.
        alertmanager: cfg.alertmanager.is_some().then(|| cfg.am.clone()),
        rule_files,
        evaluation_interval_ms: cfg.global.evaluation_interval.0,
        scrape_interval_ms: cfg.global.scrape_interval.0,
        actions: cfg.actions.clone(),
        config_texts,
        live: None,
    })
}

/// What can be read from a configuration the server refuses, as written: the rule files its
/// `rule_files:` globs name (those that resolve), the global intervals that parse, the texts.
/// The loaded pieces (routing tree, action policies) stay empty; rules needing them are skipped.
fn refused_inputs(text: &str, path: &Path, base: &Path) -> Inputs {
    let tree: serde_norway::Value = serde_norway::from_str(text).unwrap_or_default();
    let globs: Vec<String> = tree
        .get("rule_files")
        .and_then(|v| v.as_sequence())
        .map(|s| {
            s.iter()
                .filter_map(|g| g.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    // One bad glob must not hide the rule files of the others.
    let rule_files = globs
        .iter()
        .filter_map(|g| {
            tocsin_server::alerting::rule_file_paths(std::slice::from_ref(g), base).ok()
        })
        .flatten()
        .filter(|p| p.is_file())
        .collect();
    let interval = |key: &str| {
        tree.get("global")
            .and_then(|g| g.get(key))
            .and_then(|v| v.as_str())
            .and_then(|s| tocsin_model::duration::parse_duration_ms(s).ok())
            .filter(|&ms| ms > 0)
            .unwrap_or(60_000)
    };
    let mut config_texts = vec![(path.display().to_string(), text.to_string())];
    if let Some(f) = tree
        .get("alertmanager")
        .and_then(|v| v.get("file"))
        .and_then(|v| v.as_str())
    {
        let p = base.join(f);
        if let Ok(t) = std::fs::read_to_string(&p) {
            config_texts.push((p.display().to_string(), t));
        }
    }
    Inputs {
        alertmanager: None,
        rule_files,
        evaluation_interval_ms: interval("evaluation_interval"),
        scrape_interval_ms: interval("scrape_interval"),
        actions: Default::default(),
        config_texts,
        live: None,
    }
}

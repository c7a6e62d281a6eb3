//! `tocsin lint`: loads the configuration with the server's own parser (as `tocsin check config`
//! does), hands the pieces to `tocsin-lint`, prints the results and picks the exit code:
//! 0 nothing failed, 1 an ERR or SEC rule failed, 2 lint could not run.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use tocsin_lint::{output, registry, select, Context, Inputs};

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
    let cfg = tocsin_server::Config::load_file(&a.config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading {}", a.config.display()))?;
    let base = tocsin_server::config_dir(Some(&a.config));
    let rule_files = tocsin_server::alerting::rule_file_paths(&cfg.rule_files, &base)
        .map_err(|e| anyhow::anyhow!("rule_files: {e}"))?;
    let rules = select::select(registry::ALL, &a.include, &a.exclude);
    if rules.is_empty() {
        bail!("--include/--exclude leave no rule to run");
    }
    let mut config_texts = vec![(a.config.display().to_string(), cfg.source.clone())];
    // `alertmanager: {file: F}`: the alert manager kept the text it parsed.
    if let Some(f) = cfg
        .alertmanager
        .as_ref()
        .and_then(|v| v.get("file"))
        .and_then(|v| v.as_str())
    {
        config_texts.push((base.join(f).display().to_string(), cfg.am.source.clone()));
    }
    let ctx = Context::new(Inputs {
        // Without an `alertmanager:` section alerts go to external Alertmanagers lint cannot see.
        alertmanager: cfg.alertmanager.is_some().then(|| cfg.am.clone()),
        rule_files,
        evaluation_interval_ms: cfg.global.evaluation_interval.0,
        scrape_interval_ms: cfg.global.scrape_interval.0,
        actions: cfg.actions.clone(),
        config_texts,
        live: None,
    });
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

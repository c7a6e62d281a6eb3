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
use tocsin_lint::live::{Live, LiveError, Transport};
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
    /// Run the live rules against this running server's HTTP API (a Tocsin, or a Prometheus
    /// for the rules its data allows); `http://user:pass@host:port` for basic auth.
    #[arg(long, env = "TOCSIN_SERVER", conflicts_with = "data_dir")]
    server: Option<String>,
    /// Run the live rules in-process against this data directory, opened read-only (a stopped
    /// server's, or a copy).
    #[arg(long)]
    data_dir: Option<PathBuf>,
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
    /// Print on stderr how long prefetching (all file reads and live questions) and the rules
    /// took.
    #[arg(long)]
    timings: bool,
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
    let file = a.config.display().to_string();
    let base = tocsin_server::config_dir(Some(&a.config));
    let (mut inputs, load) = match tocsin_server::Config::load_file(&a.config) {
        Ok(cfg) => (
            tocsin_server::lint_run::inputs(&cfg, Some(&a.config))
                .map_err(|e| anyhow::anyhow!(e))?,
            ConfigLoad::Loaded { file },
        ),
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
            (
                refused_inputs(&text, &a.config, &base),
                ConfigLoad::Refused { file, problems },
            )
        }
    };
    // Kept alive for the run: the data directory's router answers on it.
    let mut _runtime = None;
    if let Some(url) = &a.server {
        let t = HttpTransport::new(url)?;
        inputs.live = Some(Live::new(Box::new(t), now_ms()));
    } else if let Some(dir) = &a.data_dir {
        let router =
            tocsin_server::lint_run::data_dir_router(dir).map_err(|e| anyhow::anyhow!(e))?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let t = tocsin_server::lint_run::RouterTransport::new(
            router,
            rt.handle().clone(),
            format!("data directory {}", dir.display()),
        );
        inputs.live = Some(Live::new(Box::new(t), now_ms()));
        _runtime = Some(rt);
    }
    // The `lint:` section's selection applies unless the command line names its own includes;
    // excludes of both apply.
    let include = if a.include.is_empty() {
        inputs.settings.include.clone()
    } else {
        a.include.clone()
    };
    let mut exclude = a.exclude.clone();
    exclude.extend(inputs.settings.exclude.iter().cloned());
    let rules = select::select(registry::ALL, &include, &exclude);
    if rules.is_empty() {
        bail!("--include/--exclude (with the lint: section's) leave no rule to run");
    }
    let ctx = Context::new(inputs);
    ctx.set_config_load(load);
    let started = std::time::Instant::now();
    prefetch(&ctx);
    let prefetched = started.elapsed();
    let results = tocsin_lint::run(&ctx, &rules);
    if a.timings {
        let total = started.elapsed().as_secs_f64();
        eprintln!(
            "lint timings: total {total:.3} s, prefetch {:.3} s ({:.0}%), rules {:.3} s; {} live questions about rules",
            prefetched.as_secs_f64(),
            100.0 * prefetched.as_secs_f64() / total.max(1e-9),
            total - prefetched.as_secs_f64(),
            ctx.live_rules().map_or(0, |l| l.asked),
        );
    }
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
        // The `lint:` limits of a file that does not load are unknown: the defaults apply.
        settings: Default::default(),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// `--server`: the Prometheus HTTP API over HTTP(S), one blocking client shared by lint's
/// worker threads.
struct HttpTransport {
    base: String,
    client: reqwest::blocking::Client,
}

impl HttpTransport {
    fn new(url: &str) -> anyhow::Result<HttpTransport> {
        let parsed = reqwest::Url::parse(url).with_context(|| format!("--server {url:?}"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--server {url:?}: the URL must start with http:// or https://");
        }
        let client = reqwest::blocking::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .build()?;
        Ok(HttpTransport {
            base: url.trim_end_matches('/').to_string(),
            client,
        })
    }
}

impl Transport for HttpTransport {
    fn describe(&self) -> String {
        format!("server {}", self.base)
    }

    fn get(&self, pq: &str) -> Result<Vec<u8>, LiveError> {
        let url = format!("{}{pq}", self.base);
        let resp = self
            .client
            .get(&url)
            .send()
            .map_err(|e| LiveError(format!("{pq}: {e}")))?;
        let status = resp.status();
        let body = resp.bytes().map_err(|e| LiveError(format!("{pq}: {e}")))?;
        if status.is_success() {
            Ok(body.to_vec())
        } else {
            Err(LiveError(tocsin_server::lint_run::error_message(
                status.as_u16(),
                &body,
            )))
        }
    }
}

//! `tocsin lint`: loads the configuration with the server's own parser (as `tocsin check config`
//! does), hands the pieces to `tocsin-lint`, prints the results and picks the exit code:
//! 0 nothing failed, 1 an ERR or SEC rule failed, 2 lint could not run.

use std::io::IsTerminal as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context as _};
use clap::{Args, ValueEnum};
use tocsin_lint::live::{Live, LiveError, Transport};
use tocsin_lint::{output, registry, select, Context};

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
    let cfg = tocsin_server::Config::load_file(&a.config)
        .map_err(|e| anyhow::anyhow!("{e}"))
        .with_context(|| format!("loading {}", a.config.display()))?;
    let mut inputs =
        tocsin_server::lint_run::inputs(&cfg, Some(&a.config)).map_err(|e| anyhow::anyhow!(e))?;
    let rules = select::select(registry::ALL, &a.include, &a.exclude);
    if rules.is_empty() {
        bail!("--include/--exclude leave no rule to run");
    }
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
    let ctx = Context::new(inputs);
    let started = std::time::Instant::now();
    ctx.prefetch();
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
